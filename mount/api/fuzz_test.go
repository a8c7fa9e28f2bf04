package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"clfs/sessionmgr"
)

// Fuzz targets of the control socket. Their seed corpora (the f.Add calls
// and testdata/fuzz/FuzzX/) run as ordinary tests; testdata/fuzz.sh at the
// repository root fuzzes each for a bounded time.

// ctlFixture is what the fuzzed requests can name: {lib}, {item}, {us},
// {ds} in a path, query or body are replaced by the ids of a library, an
// item of it with one committed file, an ACTIVE update session and an
// ACTIVE download session on that item, so that inputs reach past the
// "not found" answers. Inputs may end the sessions or delete the item;
// the next input then gets new ones.
type ctlFixture struct {
	m              *sessionmgr.Manager
	n              int
	lib, item      string
	update, dnload string
}

func (fx *ctlFixture) ensure(t testing.TB) {
	ctx := context.Background()
	m := fx.m
	if fx.item != "" {
		u, uerr := m.GetUpdateSession(ctx, fx.update)
		d, derr := m.GetDownloadSession(ctx, fx.dnload)
		if uerr == nil && derr == nil && u.State == sessionmgr.StateActive && d.State == sessionmgr.StateActive {
			return
		}
		// Start over on a new item; the old one goes.
		m.DeleteItem(ctx, fx.item)
	}
	fx.n++
	var err error
	if fx.lib == "" {
		if fx.lib, err = m.CreateLibrary(ctx, sessionmgr.LibraryCreateSpec{Name: "fuzz"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if fx.item, err = m.CreateItem(ctx, sessionmgr.ItemCreateSpec{LibraryID: fx.lib, Name: fmt.Sprintf("item-%d", fx.n)}, ""); err != nil {
		// An input may have renamed or deleted the library.
		if fx.lib, err = m.CreateLibrary(ctx, sessionmgr.LibraryCreateSpec{Name: fmt.Sprintf("fuzz-%d", fx.n)}, ""); err != nil {
			t.Fatal(err)
		}
		if fx.item, err = m.CreateItem(ctx, sessionmgr.ItemCreateSpec{LibraryID: fx.lib, Name: "item"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	importIntoItem(t, m, fx.item, "f.txt", []byte("committed"))
	if fx.update, err = m.CreateUpdateSession(ctx, sessionmgr.UpdateSessionCreateSpec{LibraryItemID: fx.item}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddFile(ctx, fx.update, sessionmgr.FileAddSpec{Name: "new.txt", SourceType: sessionmgr.SourcePush}); err != nil {
		t.Fatal(err)
	}
	if fx.dnload, err = m.CreateDownloadSession(ctx, sessionmgr.DownloadSessionCreateSpec{LibraryItemID: fx.item}, ""); err != nil {
		t.Fatal(err)
	}
}

func (fx *ctlFixture) expand(s string) string {
	return strings.NewReplacer("{lib}", fx.lib, "{item}", fx.item, "{us}", fx.update, "{ds}", fx.dnload).Replace(s)
}

// setsStorageDir reports whether a body would make the server create a
// storage backing: the fuzzer runs as root and must not scatter
// directories over the machine. It decodes as the create handler does.
func setsStorageDir(body []byte) bool {
	var b struct {
		Spec struct {
			StorageDir string `json:"storage_dir"`
		} `json:"create_spec"`
	}
	json.NewDecoder(bytes.NewReader(body)).Decode(&b)
	return b.Spec.StorageDir != ""
}

// checkAnswer is the contract of every answer: never a 5xx for what a
// client sent, never a redirect; an error is a 4xx with the /rest error
// body whose type matches the status; a success of the API proper is
// {"value": ...} or empty.
func checkAnswer(t *testing.T, req string, rec *httptest.ResponseRecorder) {
	t.Helper()
	status, body := rec.Code, rec.Body.Bytes()
	ctype := rec.Header().Get("Content-Type")
	switch {
	case status >= 500 || status < 200 || (status >= 300 && status < 400):
		t.Fatalf("%s\nanswered %d %s: %s", req, status, ctype, body)
	case status >= 400:
		if status == http.StatusRequestedRangeNotSatisfiable && strings.HasPrefix(req, "GET "+clfsPrefix+"/data/") {
			return // http.ServeContent's own answer to a Range past the end
		}
		var eb errorBody
		if ctype != "application/json" || json.Unmarshal(body, &eb) != nil {
			t.Fatalf("%s\nanswered %d with a body that is not the error JSON (%s): %q", req, status, ctype, body)
		}
		if !strings.HasPrefix(eb.Type, errorTypePrefix) || len(eb.Value.Messages) == 0 || eb.Value.Messages[0].DefaultMessage == "" {
			t.Fatalf("%s\nanswered %d with an incomplete error: %s", req, status, body)
		}
		if w := kindWire[kindOfType(eb.Type)]; w.Status != status {
			t.Fatalf("%s\nanswered %d with error type %s, whose status is %d", req, status, eb.Type, w.Status)
		}
	case strings.HasPrefix(req, "GET "+clfsPrefix+"/data/"):
		// File bytes.
	case ctype == ndjson:
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			if !json.Valid(sc.Bytes()) {
				t.Fatalf("%s\nanswered an NDJSON line that is not JSON: %q", req, sc.Bytes())
			}
		}
	case len(body) > 0:
		var v map[string]json.RawMessage
		if err := json.Unmarshal(body, &v); err != nil || v["value"] == nil {
			t.Fatalf("%s\nanswered %d with %q, want {\"value\": ...}", req, status, body)
		}
	}
}

// FuzzControlHandler sends arbitrary requests through the control
// socket's handler, in process, on a real session manager: whatever the
// method, path, query and body, the server does not panic and answers as
// checkAnswer requires. A request line the HTTP parser refuses never
// reaches the handler (net/http answers 400 itself), so it is skipped.
func FuzzControlHandler(f *testing.F) {
	p := restPrefix + "/"
	for _, s := range []struct{ method, path, query, body string }{
		{"GET", p + "library", "", ""},
		{"GET", p + "library", "name=fuzz", ""},
		{"GET", p + "library", "name=%ff", ""},
		{"POST", p + "library", "~action=find", `{"spec":{"name":"fuzz"}}`},
		{"POST", p + "library", "~action=find", `{"spec":`},
		{"GET", p + "library/id:{lib}", "", ""},
		{"GET", p + "library/{lib}", "", ""},
		{"GET", p + "local-library/id:", "", ""},
		{"POST", p + "local-library", "", `{"create_spec":{"name":"new"},"client_token":"t"}`},
		{"POST", p + "local-library", "", `{"create_spec":{"name":"../x"}}`},
		{"POST", p + "local-library", "", `{"create_spec":{"name":"a\u0000b"}}`},
		{"POST", p + "local-library", "", `{"create_spec":{"name":"` + strings.Repeat("x", 300) + `"}}`},
		{"DELETE", p + "local-library/id:{lib}", "", ""},
		{"GET", p + "library/item", "library_id={lib}", ""},
		{"GET", p + "library/item", "library_id={lib}&name=item-1", ""},
		{"POST", p + "library/item", "", `{"create_spec":{"library_id":"{lib}","name":"i"}}`},
		{"POST", p + "library/item", "~action=find", `{"spec":{"name":"i","library_id":"{lib}"}}`},
		{"POST", p + "library/item", "~action=nope", `{}`},
		{"GET", p + "library/item/id:{item}", "", ""},
		{"DELETE", p + "library/item/id:{item}", "", ""},
		{"GET", p + "library/item/file", "library_item_id={item}", ""},
		{"POST", p + "library/item/file/id:{item}", "~action=get", `{"name":"f.txt"}`},
		{"POST", p + "library/item/file/id:{item}", "~action=get", `{"name":"../../etc/passwd"}`},
		{"GET", p + "library/item/storage", "library_item_id={item}", ""},
		{"POST", p + "library/item/storage/id:{item}", "~action=get", `{"file_name":"f.txt"}`},
		{"GET", p + "library/item/update-session", "", ""},
		{"POST", p + "library/item/update-session", "", `{"create_spec":{"library_item_id":"{item}"}}`},
		{"GET", p + "library/item/update-session/id:{us}", "", ""},
		{"POST", p + "library/item/update-session/id:{us}", "~action=keep-alive", `{"client_progress":101}`},
		{"POST", p + "library/item/update-session/id:{us}", "~action=keep-alive", `{"client_progress":1e30}`},
		{"POST", p + "library/item/update-session/id:{us}", "~action=complete", ""},
		{"POST", p + "library/item/update-session/id:{us}", "~action=fail", `{"client_error_message":""}`},
		{"POST", p + "library/item/update-session/id:{us}", "~action=cancel", ""},
		{"DELETE", p + "library/item/update-session/id:{us}", "", ""},
		{"GET", p + "library/item/updatesession/file", "update_session_id={us}", ""},
		{"POST", p + "library/item/updatesession/file/id:{us}", "~action=add", `{"file_spec":{"name":"g","source_type":"PUSH","size":-1}}`},
		{"POST", p + "library/item/updatesession/file/id:{us}", "~action=add", `{"file_spec":{"name":"g","source_type":"PULL"}}`},
		{"POST", p + "library/item/updatesession/file/id:{us}", "~action=add", `{"file_spec":{"name":"g","source_type":"PUSH","checksum_info":{"algorithm":"MD5","checksum":"zz"}}}`},
		{"POST", p + "library/item/updatesession/file/id:{us}", "~action=get", `{"file_name":"new.txt"}`},
		{"POST", p + "library/item/updatesession/file/id:{us}", "~action=remove", `{"file_name":"f.txt"}`},
		{"POST", p + "library/item/updatesession/file/id:{us}", "~action=validate", ""},
		{"GET", p + "library/item/download-session", "library_item_id={item}", ""},
		{"POST", p + "library/item/download-session", "", `{"create_spec":{"library_item_id":"{item}"}}`},
		{"POST", p + "library/item/download-session/id:{ds}", "~action=keep-alive", `{"progress":-1}`},
		{"POST", p + "library/item/download-session/id:{ds}", "~action=fail", `{"client_error_message":"x"}`},
		{"DELETE", p + "library/item/download-session/id:{ds}", "", ""},
		{"GET", p + "library/item/downloadsession/file", "download_session_id={ds}", ""},
		{"POST", p + "library/item/downloadsession/file/id:{ds}", "~action=prepare", `{"file_name":"f.txt","endpoint_type":"DIRECT"}`},
		{"POST", p + "library/item/downloadsession/file/id:{ds}", "~action=prepare", `{"file_name":"f.txt","endpoint_type":"FTP"}`},
		{"PUT", clfsPrefix + "/data/update-session/{us}/new.txt", "", "new content"},
		{"PUT", clfsPrefix + "/data/update-session/{us}/f.txt", "x_from_committed=true", "more"},
		{"PUT", clfsPrefix + "/data/update-session/{us}/..%2F..%2Fescape", "", "x"},
		{"GET", clfsPrefix + "/data/download-session/{ds}/f.txt", "", ""},
		{"GET", clfsPrefix + "/data/download-session/{ds}/missing", "", ""},
		{"POST", clfsPrefix + "/fsck", "", ""},
		{"POST", clfsPrefix + "/fsck", "x_progress=true", ""},
		{"GET", clfsPrefix + "/info", "", ""},
		{"GET", "/rest/../clfs/info", "", ""},
		{"GET", "//rest/com/vmware/content/library", "", ""},
		{"GET", p + "library/./id:{lib}", "", ""},
		{"PATCH", p + "library/id:{lib}", "", "{}"},
		{"BREW", "/", "", ""},
		{"OPTIONS", "*", "", ""},
		{"POST", p + "local-library", "", strings.Repeat("[", 10000)},
		{"POST", p + "local-library", "", `{"create_spec":{"name":"x"}} trailing`},
	} {
		f.Add(s.method, s.path, s.query, []byte(s.body))
	}
	home := f.TempDir()
	m, err := sessionmgr.Open(sessionmgr.Options{Home: home, ReapInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	h := NewHandler(m, Options{Logger: slog.New(slog.DiscardHandler)})
	fx := &ctlFixture{m: m}
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte) {
		if setsStorageDir(body) {
			return
		}
		fx.ensure(t)
		path, query, body = fx.expand(path), fx.expand(query), []byte(fx.expand(string(body)))
		target := path
		if query != "" {
			target += "?" + query
		}
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: clfs\r\nContent-Length: %d\r\n\r\n", method, target, len(body))
		r, err := http.ReadRequest(bufio.NewReader(io.MultiReader(strings.NewReader(raw), bytes.NewReader(body))))
		if err != nil {
			return // net/http answers 400 before any handler runs
		}
		r.RemoteAddr = "@"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		checkAnswer(t, method+" "+target+" "+string(body), rec)
	})
}

// FuzzWirePath: every id and file name the client puts in a path reaches
// the handler as it was sent, through escaping and the server's routing,
// and never lands on another route.
func FuzzWirePath(f *testing.F) {
	for _, s := range []string{"a", "", ".", "..", "a/b", "%2F", "%", "?x=1", "#frag", " ", "id:x", "é", "\xff", "a\x00b", "../../etc/passwd", "\\", "~action=x"} {
		f.Add(s, s)
	}
	h := &Handler{log: slog.New(slog.DiscardHandler)}
	rest := newRouter(restDialect, restPrefix, Operations)
	// As the server parses a request off the socket, through the guard.
	parse := func(t *testing.T, method, path string) (*http.Request, int) {
		r, err := http.NewRequest(method, "http://clfs"+path, nil)
		if err != nil {
			t.Fatalf("the client cannot build %s %q: %v", method, path, err)
		}
		r, err = http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + r.URL.RequestURI() + " HTTP/1.1\r\nHost: clfs\r\n\r\n")))
		if err != nil {
			t.Fatalf("%s %q does not parse: %v", method, path, err)
		}
		code := 0
		rec := httptest.NewRecorder()
		h.guard(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { code = 200 })).ServeHTTP(rec, r)
		if code == 0 {
			code = rec.Code
		}
		return r, code
	}
	f.Fuzz(func(t *testing.T, id, name string) {
		r, code := parse(t, "PUT", DataPath("update-session", id, name))
		var kind, gotID, gotName string
		var err error
		if code == 200 {
			kind, gotID, gotName, err = parseDataPath(r.URL.EscapedPath())
		}
		if code != 200 || err != nil || kind != "update-session" || gotID != id || gotName != name {
			// What cannot be a name ("", ".", "..") may be refused,
			// as a client error, but never routed elsewhere.
			valid := sessionmgr.ValidateName("id", id) == nil && sessionmgr.ValidateName("file", name) == nil
			if valid || (code == 200 && err == nil) || (code != 200 && code/100 != 4) {
				t.Fatalf("data path of (%q, %q): %d %v %q %q %q", id, name, code, err, kind, gotID, gotName)
			}
		}
		req := EncodeRest(GetItem, &ByID{ID: id})
		r, code = parse(t, req.Method, req.Path)
		if code != 200 {
			t.Fatalf("rest path of %q: refused, %d", id, code)
		}
		op, params, err := rest.match(r)
		rid, ok := strings.CutPrefix(params["id"], "id:")
		if err != nil || op != Operation(GetItem) || !ok || rid != id {
			t.Fatalf("rest path of %q: %v %v %q", id, op, err, params["id"])
		}
	})
}

// FuzzAPIHandler is FuzzControlHandler for the public HTTPS API's chain:
// the login services, the session check and the /api form in front of the
// same routes. With or without a token, whatever is sent, the server does
// not panic and answers in the API's shapes: /rest bodies and errors, or
// /api ones under /api.
func FuzzAPIHandler(f *testing.F) {
	a := "/api/content/"
	for _, s := range []struct {
		token              bool
		method, path, body string
	}{
		{true, "GET", restPrefix + "/library", ""},
		{false, "GET", restPrefix + "/library", ""},
		{true, "POST", cisSessionPath + "?~action=get", ""},
		{true, "DELETE", cisSessionPath, ""},
		{false, "POST", cisSessionPath, ""},
		{false, "POST", cisSessionPath + "?~action=nope", ""},
		{true, "GET", "/api/session", ""},
		{true, "PATCH", "/api/session", ""},
		{true, "GET", a + "library", ""},
		{true, "POST", a + "library?action=find", `{"name":"fuzz"}`},
		{true, "POST", a + "local-library", `{"name":"new"}`},
		{true, "POST", a + "local-library", `[`},
		{true, "GET", a + "library/{lib}", ""},
		{true, "PATCH", a + "library/{lib}", `{"name":"renamed"}`},
		{true, "GET", a + "library/item?library_id={lib}", ""},
		{true, "POST", a + "library/item", `{"library_id":"{lib}","name":"i"}`},
		{true, "GET", a + "library/item/{item}/file", ""},
		{true, "GET", a + "library/item/{item}/file?name=f.txt", ""},
		{true, "GET", a + "library/item/{item}/storage?file_name=f.txt", ""},
		{true, "POST", a + "library/item/update-session", `{"library_item_id":"{item}"}`},
		{true, "POST", a + "library/item/update-session/{us}/file", `{"name":"g","source_type":"PUSH"}`},
		{true, "GET", a + "library/item/update-session/{us}/file/f.txt", ""},
		{true, "DELETE", a + "library/item/update-session/{us}/file/f.txt", ""},
		{true, "POST", a + "library/item/update-session/{us}?action=complete", ""},
		{true, "POST", a + "library/item/update-session/file", ""},
		{true, "GET", a + "library/item/download-session/{ds}/file?file_name=f.txt", ""},
		{true, "POST", a + "library/item/download-session/{ds}/file?action=prepare", `{"file_name":"f.txt"}`},
		{true, "PUT", clfsPrefix + "/data/update-session/{us}/new.txt", "new content"},
		{false, "GET", clfsPrefix + "/data/download-session/{ds}/f.txt", ""},
		{true, "GET", "/api/../rest/com/vmware/content/library", ""},
	} {
		f.Add(s.token, s.method, s.path, []byte(s.body))
	}
	home := f.TempDir()
	m, err := sessionmgr.Open(sessionmgr.Options{Home: home, ReapInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	logins, err := NewLogins(Credentials{User: "u", Password: "p"}, 0, nil)
	if err != nil {
		f.Fatal(err)
	}
	h := NewHandler(m, Options{Logger: slog.New(slog.DiscardHandler), Public: &Public{Logins: logins}})
	fx := &ctlFixture{m: m}
	f.Fuzz(func(t *testing.T, withToken bool, method, target string, body []byte) {
		if setsStorageDir(body) || strings.Contains(string(body), "storage_backings") {
			return
		}
		fx.ensure(t)
		target, body = fx.expand(target), []byte(fx.expand(string(body)))
		// A fresh login per input: the input may log out.
		token, err := logins.Login("u", "p")
		if err != nil {
			t.Fatal(err)
		}
		hdr := ""
		if withToken {
			hdr = APISessionHeader + ": " + token + "\r\n"
		}
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: clfs\r\n%sContent-Length: %d\r\n\r\n", method, target, hdr, len(body))
		r, err := http.ReadRequest(bufio.NewReader(io.MultiReader(strings.NewReader(raw), bytes.NewReader(body))))
		if err != nil {
			return
		}
		r.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		req := method + " " + target + " " + string(body)
		if !strings.HasPrefix(r.URL.Path, "/api/") {
			checkAnswer(t, req, rec)
			return
		}
		status, ctype := rec.Code, rec.Header().Get("Content-Type")
		switch {
		case status >= 500 || status < 200 || (status >= 300 && status < 400):
			t.Fatalf("%s\nanswered %d: %s", req, status, rec.Body)
		case status >= 400:
			var eb apiErrorBody
			if ctype != "application/json" || json.Unmarshal(rec.Body.Bytes(), &eb) != nil || eb.ErrorType == "" || len(eb.Messages) == 0 {
				// A path the /api form does not know is answered by
				// the /rest catch-all, in the /rest shape.
				checkAnswer(t, req, rec)
			}
		case status == http.StatusNoContent:
			if rec.Body.Len() != 0 {
				t.Fatalf("%s\nanswered 204 with a body %q", req, rec.Body)
			}
		case !json.Valid(rec.Body.Bytes()):
			t.Fatalf("%s\nanswered %d with %q, not JSON", req, status, rec.Body)
		}
	})
}

// importIntoItem commits a file into an item through an update session.
func importIntoItem(t testing.TB, m *sessionmgr.Manager, itemID, name string, data []byte) {
	t.Helper()
	ctx := context.Background()
	sid, err := m.CreateUpdateSession(ctx, sessionmgr.UpdateSessionCreateSpec{LibraryItemID: itemID}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddFile(ctx, sid, sessionmgr.FileAddSpec{Name: name, SourceType: sessionmgr.SourcePush}); err != nil {
		t.Fatal(err)
	}
	up, err := m.OpenUpload(ctx, sid, name, sessionmgr.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	up.Close()
	if err := m.CompleteUpdateSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
}
