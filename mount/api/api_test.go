package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"clfs/sessionmgr"
)

// The HTTPS API without FUSE: a session manager in a temp home behind
// Listen and ServeHTTPS, driven with raw HTTP so that every status and
// error body is seen as a client sees it. The govmomi client is driven
// against a real `clfs serve` in cmd/clfs/rest_test.go.

type apiEnv struct {
	t      testing.TB
	m      *sessionmgr.Manager
	l      *Listener
	base   string
	client *http.Client
	token  string
}

const (
	apiTestUser     = "administrator@vsphere.local"
	apiTestPassword = "s3cret pass:word"
)

// envOptions are the server's: a read-only one refuses changes.
type envOptions struct{ ReadOnly bool }

func newAPIEnv(t testing.TB, opts envOptions) *apiEnv {
	t.Helper()
	return newAPIEnvLogging(t, opts, ctlLogger(t))
}

func newAPIEnvLogging(t testing.TB, opts envOptions, log *slog.Logger) *apiEnv {
	t.Helper()
	home := t.TempDir()
	l, err := Listen(home, ListenOptions{Listen: "127.0.0.1:0", Credentials: Credentials{User: apiTestUser, Password: apiTestPassword}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := sessionmgr.Open(sessionmgr.Options{Home: home, ReadOnly: opts.ReadOnly, Logger: log, Endpoints: l.Endpoints(), ReapInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := ServeHTTPS(m, l, Options{Logger: log})
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		m.Close()
	})
	// Trust exactly the served certificate, as a client that pinned it.
	pool := x509.NewCertPool()
	pool.AddCert(l.cert.Leaf)
	e := &apiEnv{t: t, m: m, l: l, base: l.URL(), client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	e.token = e.login(apiTestUser, apiTestPassword)
	return e
}

func (e *apiEnv) login(user, password string) string {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+cisSessionPath, nil)
	req.SetBasicAuth(user, password)
	status, body := e.do(req)
	if status != http.StatusOK {
		e.t.Fatalf("login: HTTP %d %s", status, body)
	}
	var v struct{ Value string }
	if err := json.Unmarshal(body, &v); err != nil || v.Value == "" {
		e.t.Fatalf("login: %s (%v)", body, err)
	}
	return v.Value
}

func (e *apiEnv) do(req *http.Request) (int, []byte) {
	e.t.Helper()
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.StatusCode, b
}

// call makes an API call with the env's token and a JSON body (nil: none).
func (e *apiEnv) call(method, path string, body any) (int, []byte) {
	e.t.Helper()
	return e.callAs(e.token, method, path, body)
}

func (e *apiEnv) callAs(token, method, path string, body any) (int, []byte) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.base+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set(APISessionHeader, token)
	}
	return e.do(req)
}

// value calls and decodes the {"value": ...} of a 200 answer into v.
func (e *apiEnv) value(method, path string, body, v any) {
	e.t.Helper()
	status, b := e.call(method, path, body)
	if status != http.StatusOK {
		e.t.Fatalf("%s %s: HTTP %d %s", method, path, status, b)
	}
	if v == nil {
		return
	}
	wrapped := struct {
		Value any `json:"value"`
	}{v}
	if err := json.Unmarshal(b, &wrapped); err != nil {
		e.t.Fatalf("%s %s: %s: %v", method, path, b, err)
	}
}

// wantError checks an answer is the spec's error: HTTP status and
// com.vmware.vapi.std.errors type, with a message.
func wantError(t *testing.T, what string, status int, body []byte, wantStatus int, wantType string) {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Errorf("%s: body %q is not an error body: %v", what, body, err)
		return
	}
	if status != wantStatus || eb.Type != "com.vmware.vapi.std.errors."+wantType {
		t.Errorf("%s: HTTP %d %s, want HTTP %d com.vmware.vapi.std.errors.%s (%s)", what, status, eb.Type, wantStatus, wantType, body)
	}
	if len(eb.Value.Messages) == 0 || eb.Value.Messages[0].DefaultMessage == "" {
		t.Errorf("%s: no message in %s", what, body)
	}
}

const restContent = "/rest/com/vmware/content"

// newItem creates a library and an item over the API and returns the
// item's id.
func (e *apiEnv) newItem(lib, item string) string {
	e.t.Helper()
	var libID, itemID string
	e.value("POST", restContent+"/local-library", map[string]any{"create_spec": map[string]any{"name": lib, "type": "LOCAL"}}, &libID)
	e.value("POST", restContent+"/library/item", map[string]any{"create_spec": map[string]any{"name": item, "library_id": libID, "type": "iso"}}, &itemID)
	return itemID
}

func (e *apiEnv) newUpdateSession(itemID string) string {
	e.t.Helper()
	var sid string
	e.value("POST", restContent+"/library/item/update-session", map[string]any{"create_spec": map[string]any{"library_item_id": itemID}}, &sid)
	return sid
}

// addFile adds a PUSH file and returns its upload URI.
func (e *apiEnv) addFile(sid string, spec map[string]any) string {
	e.t.Helper()
	var info sessionmgr.UpdateSessionFile
	e.value("POST", restContent+"/library/item/updatesession/file/id:"+sid+"?~action=add", map[string]any{"file_spec": spec}, &info)
	if info.UploadEndpoint == nil || !strings.HasPrefix(info.UploadEndpoint.URI, e.base+"/") {
		e.t.Fatalf("add: upload endpoint %+v, want one under %s", info.UploadEndpoint, e.base)
	}
	return info.UploadEndpoint.URI
}

func (e *apiEnv) put(uri, token string, data []byte) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPut, uri, bytes.NewReader(data))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set(APISessionHeader, token)
	}
	return e.do(req)
}

func TestAPILogin(t *testing.T) {
	e := newAPIEnv(t, envOptions{})
	var info apiSessionInfo
	e.value("POST", cisSessionPath+"?~action=get", nil, &info)
	if info.User != apiTestUser || info.Created.IsZero() {
		t.Errorf("session info %+v", info)
	}
	var ids []string
	e.value("GET", restContent+"/library", nil, &ids)
	if len(ids) != 0 {
		t.Errorf("library list of an empty home: %v", ids)
	}

	// The token also works as the cookie the login set.
	req, _ := http.NewRequest("GET", e.base+restContent+"/library", nil)
	req.AddCookie(&http.Cookie{Name: APISessionHeader, Value: e.token})
	if status, body := e.do(req); status != 200 {
		t.Errorf("with the cookie: HTTP %d %s", status, body)
	}

	// The /api form of the session service.
	req, _ = http.NewRequest("POST", e.base+"/api/session", nil)
	req.SetBasicAuth(apiTestUser, apiTestPassword)
	status, body := e.do(req)
	var apiToken string
	if status != http.StatusCreated || json.Unmarshal(body, &apiToken) != nil || apiToken == "" {
		t.Errorf("POST /api/session: HTTP %d %s", status, body)
	}

	// Logout ends the session, and only that one.
	if status, body := e.call("DELETE", cisSessionPath, nil); status != 200 {
		t.Fatalf("logout: HTTP %d %s", status, body)
	}
	status, body = e.call("GET", restContent+"/library", nil)
	wantError(t, "after logout", status, body, 401, "unauthenticated")
	if status, body := e.callAs(apiToken, "GET", restContent+"/library", nil); status != 200 {
		t.Errorf("the other session after logout: HTTP %d %s", status, body)
	}
}

// TestAPIErrors provokes every error a client can and checks the spec's
// kind and HTTP status (spec §0.2).
func TestAPIErrors(t *testing.T) {
	e := newAPIEnv(t, envOptions{})
	itemID := e.newItem("lib", "item")
	const unknown = "00000000-0000-4000-8000-000000000000"

	// Authentication.
	status, body := e.callAs("", "GET", restContent+"/library", nil)
	wantError(t, "no token", status, body, 401, "unauthenticated")
	status, body = e.callAs("not-a-token", "GET", restContent+"/library/item?library_id=x", nil)
	wantError(t, "unknown token", status, body, 401, "unauthenticated")
	req, _ := http.NewRequest("POST", e.base+cisSessionPath, nil)
	req.SetBasicAuth(apiTestUser, "wrong")
	status, body = e.do(req)
	wantError(t, "wrong password", status, body, 401, "unauthenticated")
	req, _ = http.NewRequest("POST", e.base+cisSessionPath, nil)
	status, body = e.do(req)
	wantError(t, "login without credentials", status, body, 401, "unauthenticated")

	// Unknown ids.
	for _, path := range []string{
		"/library/id:" + unknown, "/local-library/id:" + unknown, "/library/item/id:" + unknown,
		"/library/item/update-session/id:" + unknown, "/library/item/download-session/id:" + unknown,
	} {
		status, body := e.call("GET", restContent+path, nil)
		wantError(t, "GET "+path, status, body, 404, "not_found")
	}
	status, body = e.call("GET", restContent+"/library/item?library_id="+unknown, nil)
	wantError(t, "items of an unknown library", status, body, 404, "not_found")
	status, body = e.call("POST", restContent+"/library/item/update-session", map[string]any{"create_spec": map[string]any{"library_item_id": unknown}})
	wantError(t, "update session on an unknown item", status, body, 404, "not_found")
	status, body = e.put(e.base+DataPath("update-session", unknown, "f"), e.token, []byte("x"))
	wantError(t, "PUT to an unknown session", status, body, 404, "not_found")
	status, body = e.call("GET", restContent+"/no/such/thing", nil)
	wantError(t, "unknown operation", status, body, 404, "not_found")

	// Bad input.
	status, body = e.call("POST", restContent+"/library/item", map[string]any{"create_spec": map[string]any{"name": "item", "library_id": e.libraryOf(itemID)}})
	wantError(t, "second item of the same name", status, body, 400, "already_exists")
	status, body = e.call("POST", restContent+"/library/item/update-session", map[string]any{"client_token": "not-a-uuid", "create_spec": map[string]any{"library_item_id": itemID}})
	wantError(t, "client_token not a UUID", status, body, 400, "invalid_argument")
	status, body = e.call("POST", restContent+"/local-library", map[string]any{"create_spec": map[string]any{"name": "two", "storage_backings": []map[string]any{{"type": "OTHER", "storage_uri": "file:///tmp/a"}, {"type": "OTHER", "storage_uri": "file:///tmp/b"}}}})
	wantError(t, "two storage backings", status, body, 400, "unsupported")
	status, body = e.call("POST", restContent+"/local-library", map[string]any{"create_spec": map[string]any{"name": "ds", "storage_backings": []map[string]any{{"type": "DATASTORE", "datastore_id": "datastore-1"}}}})
	wantError(t, "a datastore backing", status, body, 400, "invalid_argument")

	// Second active session on an item.
	sid := e.newUpdateSession(itemID)
	status, body = e.call("POST", restContent+"/library/item/update-session", map[string]any{"create_spec": map[string]any{"library_item_id": itemID}})
	wantError(t, "second active update session", status, body, 400, "resource_busy")
	status, body = e.call("DELETE", restContent+"/library/item/update-session/id:"+sid, nil)
	wantError(t, "delete of an ACTIVE session", status, body, 400, "not_allowed_in_current_state")
	status, body = e.call("POST", restContent+"/library/item/update-session/id:"+sid+"?~action=frobnicate", nil)
	wantError(t, "unknown action", status, body, 400, "invalid_argument")
	status, body = e.call("POST", restContent+"/library/item/updatesession/file/id:"+sid+"?~action=get", map[string]any{"file_name": "nope"})
	wantError(t, "get of a file not in the session", status, body, 400, "invalid_argument")

	// Bad checksum: the PUT is refused, the file is ERROR, complete fails.
	data := []byte("the content of a.iso")
	uri := e.addFile(sid, map[string]any{"name": "a.iso", "source_type": "PUSH", "size": len(data),
		"checksum_info": map[string]any{"algorithm": "SHA256", "checksum": strings.Repeat("ab", 32)}})
	status, body = e.put(uri, e.token, data)
	wantError(t, "PUT with a checksum mismatch", status, body, 400, "invalid_argument")
	var f sessionmgr.UpdateSessionFile
	e.value("POST", restContent+"/library/item/updatesession/file/id:"+sid+"?~action=get", map[string]any{"file_name": "a.iso"}, &f)
	if f.Status != sessionmgr.TransferError || f.ErrorMessage == nil || !strings.Contains(f.ErrorMessage.DefaultMessage, "checksum") {
		t.Errorf("file after a checksum mismatch: %+v", f)
	}
	status, body = e.call("POST", restContent+"/library/item/update-session/id:"+sid+"?~action=complete", nil)
	wantError(t, "complete with a bad file", status, body, 400, "not_allowed_in_current_state")

	// Oversized PUT: refused once past the declared size, not stored.
	big := bytes.Repeat([]byte("x"), 3<<20)
	uri = e.addFile(sid, map[string]any{"name": "b.iso", "source_type": "PUSH", "size": 1 << 20})
	status, body = e.put(uri, e.token, big)
	wantError(t, "PUT past the declared size", status, body, 400, "invalid_argument")
	e.value("POST", restContent+"/library/item/updatesession/file/id:"+sid+"?~action=get", map[string]any{"file_name": "b.iso"}, &f)
	if f.Status != sessionmgr.TransferError || f.BytesTransferred > 1<<20 {
		t.Errorf("file after an oversized PUT: status %s, %d bytes transferred", f.Status, f.BytesTransferred)
	}

	// A PUT with neither the token nor the URI's key, or with another
	// file's key, is refused before it touches the session.
	uri = e.addFile(sid, map[string]any{"name": "c.iso", "source_type": "PUSH"})
	bare, _, _ := strings.Cut(uri, "?")
	status, body = e.put(bare, "", data)
	wantError(t, "PUT without a token or key", status, body, 401, "unauthenticated")
	otherKey := e.addFile(sid, map[string]any{"name": "other.iso", "source_type": "PUSH"})
	_, key, _ := strings.Cut(otherKey, "?")
	status, body = e.put(bare+"?"+key, "", data)
	wantError(t, "PUT with another file's key", status, body, 401, "unauthenticated")
	// With its key alone (as VMware's SDK samples PUT) it is taken.
	if status, body := e.put(uri, "", data); status != 200 {
		t.Errorf("PUT with the URI's key and no token: HTTP %d %s", status, body)
	}

	// Wrong state: the session ends, its endpoints with it.
	e.value("POST", restContent+"/library/item/update-session/id:"+sid+"?~action=cancel", nil, nil)
	for _, action := range []string{"complete", "cancel", "keep-alive"} {
		status, body := e.call("POST", restContent+"/library/item/update-session/id:"+sid+"?~action="+action, nil)
		wantError(t, action+" of a CANCELED session", status, body, 400, "not_allowed_in_current_state")
	}
	status, body = e.put(uri, e.token, data)
	wantError(t, "PUT to a CANCELED session", status, body, 400, "not_allowed_in_current_state")
	status, body = e.call("POST", restContent+"/library/item/updatesession/file/id:"+sid+"?~action=add", map[string]any{"file_spec": map[string]any{"name": "d", "source_type": "PUSH"}})
	wantError(t, "add to a CANCELED session", status, body, 400, "not_allowed_in_current_state")
	e.value("DELETE", restContent+"/library/item/update-session/id:"+sid, nil, nil)
	status, body = e.put(uri, e.token, data)
	wantError(t, "PUT to a deleted session", status, body, 404, "not_found")

	// Download sessions: an unknown file, then a dead endpoint.
	var did string
	e.value("POST", restContent+"/library/item/download-session", map[string]any{"create_spec": map[string]any{"library_item_id": itemID}}, &did)
	status, body = e.call("POST", restContent+"/library/item/downloadsession/file/id:"+did+"?~action=prepare", map[string]any{"file_name": "nope"})
	wantError(t, "prepare of an unknown file", status, body, 400, "invalid_argument")
	e.value("POST", restContent+"/library/item/download-session/id:"+did+"?~action=cancel", nil, nil)
	status, body = e.call("POST", restContent+"/library/item/download-session/id:"+did+"?~action=keep-alive", nil)
	wantError(t, "keep-alive of a CANCELED download session", status, body, 400, "not_allowed_in_current_state")
}

func (e *apiEnv) libraryOf(itemID string) string {
	e.t.Helper()
	var it sessionmgr.Item
	e.value("GET", restContent+"/library/item/id:"+itemID, nil, &it)
	return it.LibraryID
}

// TestAPIReadOnly: a read-only server serves reads and refuses changes
// with Unauthorized.
func TestAPIReadOnly(t *testing.T) {
	e := newAPIEnv(t, envOptions{ReadOnly: true})
	var ids []string
	e.value("GET", restContent+"/library", nil, &ids)
	status, body := e.call("POST", restContent+"/local-library", map[string]any{"create_spec": map[string]any{"name": "x"}})
	wantError(t, "create on a read-only server", status, body, 403, "unauthorized")
}

// TestAPITransfer: PUSH through the upload endpoint, then a download
// session's endpoint with and without Range; lists are ids.
func TestAPITransfer(t *testing.T) {
	e := newAPIEnv(t, envOptions{})
	itemID := e.newItem("lib", "item")
	data := bytes.Repeat([]byte("0123456789abcdef"), 100<<10) // 1.6 MB: a blob file, not inline
	sum := sha256.Sum256(data)
	sid := e.newUpdateSession(itemID)
	uri := e.addFile(sid, map[string]any{"name": "disk.vmdk", "source_type": "PUSH", "size": len(data),
		"checksum_info": map[string]any{"algorithm": "SHA256", "checksum": strings.ToUpper(hex.EncodeToString(sum[:]))}})
	if status, body := e.put(uri, e.token, data); status != 200 {
		t.Fatalf("PUT: HTTP %d %s", status, body)
	}
	var ids []string
	e.value("GET", restContent+"/library/item/update-session?library_item_id="+itemID, nil, &ids)
	if len(ids) != 1 || ids[0] != sid {
		t.Errorf("update-session list: %v, want [%s]", ids, sid)
	}
	e.value("POST", restContent+"/library/item/update-session/id:"+sid+"?~action=complete", nil, nil)
	var s sessionmgr.UpdateSession
	e.value("GET", restContent+"/library/item/update-session/id:"+sid, nil, &s)
	if s.State != sessionmgr.StateDone {
		t.Fatalf("session after complete: %+v", s)
	}
	var files []sessionmgr.File
	e.value("GET", restContent+"/library/item/file?library_item_id="+itemID, nil, &files)
	if len(files) != 1 || files[0].Size != int64(len(data)) || files[0].Version != "1" || files[0].ChecksumInfo == nil || files[0].ChecksumInfo.Checksum != hex.EncodeToString(sum[:]) {
		t.Fatalf("files: %+v", files)
	}

	var did string
	e.value("POST", restContent+"/library/item/download-session", map[string]any{"create_spec": map[string]any{"library_item_id": itemID}}, &did)
	var df sessionmgr.DownloadSessionFile
	e.value("POST", restContent+"/library/item/downloadsession/file/id:"+did+"?~action=prepare", map[string]any{"file_name": "disk.vmdk", "endpoint_type": "HTTPS"}, &df)
	e.value("POST", restContent+"/library/item/downloadsession/file/id:"+did+"?~action=get", map[string]any{"file_name": "disk.vmdk"}, &df)
	if df.Status != sessionmgr.PrepareStatus("PREPARED") || df.DownloadEndpoint == nil || !strings.HasPrefix(df.DownloadEndpoint.URI, e.base+"/") {
		t.Fatalf("prepared file: %+v", df)
	}
	get := func(rng string) (int, []byte) {
		req, _ := http.NewRequest("GET", df.DownloadEndpoint.URI, nil)
		req.Header.Set(APISessionHeader, e.token)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		return e.do(req)
	}
	if status, got := get(""); status != 200 || !bytes.Equal(got, data) {
		t.Errorf("GET: HTTP %d, %d bytes, want %d", status, len(got), len(data))
	}
	if status, got := get("bytes=1000-1999"); status != http.StatusPartialContent || !bytes.Equal(got, data[1000:2000]) {
		t.Errorf("GET with Range: HTTP %d, %q", status, short(got))
	}
	// The endpoint's key stands for the token; without either, 401.
	req, _ := http.NewRequest("GET", df.DownloadEndpoint.URI, nil)
	if status, got := e.do(req); status != 200 || !bytes.Equal(got, data) {
		t.Errorf("GET with the URI's key and no token: HTTP %d, %d bytes", status, len(got))
	}
	bare, _, _ := strings.Cut(df.DownloadEndpoint.URI, "?")
	req, _ = http.NewRequest("GET", bare, nil)
	if status, body := e.do(req); status != 401 {
		t.Errorf("GET without a token or key: HTTP %d %s", status, short(body))
	}
	req, _ = http.NewRequest("GET", bare+"?"+transferKeyParam+"=AAAA", nil)
	if status, body := e.do(req); status != 401 {
		t.Errorf("GET with a wrong key: HTTP %d %s", status, short(body))
	}
	e.value("GET", restContent+"/library/item/download-session?library_item_id="+itemID, nil, &ids)
	if len(ids) != 1 || ids[0] != did {
		t.Errorf("download-session list: %v, want [%s]", ids, did)
	}
	e.value("DELETE", restContent+"/library/item/download-session/id:"+did, nil, nil)
	if status, _ := get(""); status != 404 {
		t.Errorf("GET after the download session's delete: HTTP %d, want 404", status)
	}
}

// TestAPICertificate: the self-signed certificate is made once, kept
// private, and reused with the same thumbprint.
func TestAPICertificate(t *testing.T) {
	home := t.TempDir()
	opts := ListenOptions{Listen: "127.0.0.1:0", Credentials: Credentials{User: "u", Password: "p"}}
	l1, err := Listen(home, opts)
	if err != nil {
		t.Fatal(err)
	}
	l1.Close()
	st, err := os.Stat(filepath.Join(home, tlsDir, tlsKeyName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	l2, err := Listen(home, opts)
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
	if l1.Thumbprint() != l2.Thumbprint() || len(l1.Thumbprint()) != 59 {
		t.Errorf("thumbprints %s and %s", l1.Thumbprint(), l2.Thumbprint())
	}
	// Transfer URIs handed out before a restart still work after it.
	if k1, k2 := l1.keys.of("update-session", "s", "f"), l2.keys.of("update-session", "s", "f"); k1 != k2 || k1 == l1.keys.of("update-session", "s", "g") {
		t.Errorf("transfer keys across a restart: %s, %s", k1, k2)
	}
	// A certificate given by flags is served instead.
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := writeSelfSigned(dir, certFile, keyFile, []string{"clfs.example"}); err != nil {
		t.Fatal(err)
	}
	given, err := loadCertificate(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l3, err := Listen(home, ListenOptions{Listen: "127.0.0.1:0", Credentials: opts.Credentials, CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	l3.Close()
	if l3.Thumbprint() != sessionmgr.ThumbprintSHA1(given.Leaf) || l3.Thumbprint() == l1.Thumbprint() || !slices.Contains(given.Leaf.DNSNames, "clfs.example") {
		t.Errorf("--tls-cert: served %s, the file's is %s", l3.Thumbprint(), sessionmgr.ThumbprintSHA1(given.Leaf))
	}
	if _, err := Listen(home, ListenOptions{Listen: "127.0.0.1:0"}); err == nil {
		t.Error("an API without credentials was served")
	}
	if _, err := Listen(home, ListenOptions{Listen: "127.0.0.1:0", Credentials: opts.Credentials, CertFile: "x.pem"}); err == nil {
		t.Error("--tls-cert without --tls-key was accepted")
	}
	if _, err := Listen(home, ListenOptions{Listen: "nonsense", Credentials: opts.Credentials}); err == nil {
		t.Error("a listen address without a port was accepted")
	}
}

// TestAPIForm drives the /api spelling of the same operations: bare
// bodies and results, ids in paths, ?action=, 201 and 204, /api errors.
func TestAPIForm(t *testing.T) {
	e := newAPIEnv(t, envOptions{})
	call := func(method, path string, body any, wantStatus int, v any) []byte {
		t.Helper()
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, e.base+path, r)
		req.Header.Set(APISessionHeader, e.token)
		status, b := e.do(req)
		if status != wantStatus {
			t.Fatalf("%s %s: HTTP %d %s, want %d", method, path, status, b, wantStatus)
		}
		if v != nil {
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatalf("%s %s: %s: %v", method, path, b, err)
			}
		}
		return b
	}
	var libID, itemID, sid, did string
	call("POST", "/api/content/local-library", map[string]any{"name": "lib"}, 201, &libID)
	call("POST", "/api/content/library/item", map[string]any{"name": "item", "library_id": libID}, 201, &itemID)
	var found []string
	call("POST", "/api/content/library/item?action=find", map[string]any{"name": "ITEM", "library_id": libID}, 200, &found)
	if len(found) != 1 || found[0] != itemID {
		t.Errorf("find: %v", found)
	}
	call("PATCH", "/api/content/library/item/"+itemID, map[string]any{"description": "d"}, 204, nil)
	var it sessionmgr.Item
	call("GET", "/api/content/library/item/"+itemID, nil, 200, &it)
	if it.Description != "d" || it.Name != "item" {
		t.Errorf("item: %+v", it)
	}
	call("POST", "/api/content/library/item/update-session", map[string]any{"library_item_id": itemID}, 201, &sid)
	var f sessionmgr.UpdateSessionFile
	call("POST", "/api/content/library/item/update-session/"+sid+"/file", map[string]any{"name": "a.txt", "source_type": "PUSH", "size": 5}, 200, &f)
	if status, body := e.put(f.UploadEndpoint.URI, e.token, []byte("hello")); status != 200 {
		t.Fatalf("PUT: %d %s", status, body)
	}
	call("GET", "/api/content/library/item/update-session/"+sid+"/file/a.txt", nil, 200, &f)
	if f.Status != sessionmgr.TransferReady {
		t.Errorf("file: %+v", f)
	}
	var vr sessionmgr.ValidationResult
	call("POST", "/api/content/library/item/update-session/"+sid+"/file?action=validate", nil, 200, &vr)
	if vr.HasErrors {
		t.Errorf("validate: %+v", vr)
	}
	call("POST", "/api/content/library/item/update-session/"+sid+"?action=complete", nil, 204, nil)
	var files []sessionmgr.File
	call("GET", "/api/content/library/item/"+itemID+"/file", nil, 200, &files)
	if len(files) != 1 || files[0].Name != "a.txt" || files[0].Size != 5 {
		t.Errorf("files: %+v", files)
	}
	var one sessionmgr.File
	call("GET", "/api/content/library/item/"+itemID+"/file?name=a.txt", nil, 200, &one)
	if one.Name != "a.txt" {
		t.Errorf("file get: %+v", one)
	}
	call("POST", "/api/content/library/item/download-session", map[string]any{"library_item_id": itemID}, 201, &did)
	var df sessionmgr.DownloadSessionFile
	call("POST", "/api/content/library/item/download-session/"+did+"/file?action=prepare", map[string]any{"file_name": "a.txt", "endpoint_type": "HTTPS"}, 200, &df)
	call("GET", "/api/content/library/item/download-session/"+did+"/file?file_name=a.txt", nil, 200, &df)
	if df.Status != "PREPARED" || df.DownloadEndpoint == nil {
		t.Errorf("download file: %+v", df)
	}
	call("DELETE", "/api/content/library/item/download-session/"+did, nil, 204, nil)

	var eb apiErrorBody
	call("GET", "/api/content/library/item/"+"00000000-0000-4000-8000-000000000000", nil, 404, &eb)
	if eb.ErrorType != "NOT_FOUND" || len(eb.Messages) == 0 {
		t.Errorf("/api error: %+v", eb)
	}
	call("POST", "/api/content/library/item/update-session", map[string]any{"library_item_id": itemID}, 201, &sid)
	call("POST", "/api/content/library/item/update-session", map[string]any{"library_item_id": itemID}, 400, &eb)
	if eb.ErrorType != "RESOURCE_BUSY" {
		t.Errorf("second session: %+v", eb)
	}
	req, _ := http.NewRequest("GET", e.base+"/api/content/library", nil)
	status, body := e.do(req)
	if json.Unmarshal(body, &eb) != nil || status != 401 || eb.ErrorType != "UNAUTHENTICATED" {
		t.Errorf("/api without a token: HTTP %d %s", status, body)
	}
}

// TestAPISessionsExpire: a login dies after its idle time, activity
// keeps it, and the oldest goes when the table is full.
func TestAPISessionsExpire(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a, err := NewLogins(Credentials{User: "u", Password: "p"}, time.Minute, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Login("u", "q"); !errors.Is(err, errBadLogin) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := a.Login("v", "p"); !errors.Is(err, errBadLogin) {
		t.Fatalf("wrong user: %v", err)
	}
	kept, err := a.Login("u", "p")
	if err != nil {
		t.Fatal(err)
	}
	idle, _ := a.Login("u", "p")
	now = now.Add(50 * time.Second)
	if _, _, _, ok := a.Lookup(kept); !ok {
		t.Fatal("a live session was not found")
	}
	now = now.Add(50 * time.Second)
	if _, _, _, ok := a.Lookup(idle); ok {
		t.Error("a session idle for 100s of a 60s lifetime is alive")
	}
	if _, _, _, ok := a.Lookup(kept); !ok {
		t.Error("a session used 50s ago expired")
	}
	a.Logout(kept)
	if _, _, _, ok := a.Lookup(kept); ok {
		t.Error("a session is alive after logout")
	}
	first, _ := a.Login("u", "p")
	for i := 0; i < maxLogins; i++ {
		now = now.Add(time.Millisecond)
		if _, err := a.Login("u", "p"); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, ok := a.Lookup(first); ok || len(a.sessions) != maxLogins {
		t.Errorf("full table: the oldest login survived (%v) or %d sessions kept", ok, len(a.sessions))
	}
}

// TestAPIBrokenUpload: a PUT whose connection drops half way leaves the
// file ERROR, never READY with part of its bytes, even without a
// declared size.
func TestAPIBrokenUpload(t *testing.T) {
	e := newAPIEnv(t, envOptions{})
	sid := e.newUpdateSession(e.newItem("lib", "item"))
	uri := e.addFile(sid, map[string]any{"name": "a.iso", "source_type": "PUSH"})
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, e.client.Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\n%s: %s\r\nContent-Length: 100000\r\n\r\n", u.RequestURI(), u.Host, APISessionHeader, e.token)
	conn.Write(bytes.Repeat([]byte("x"), 5000))
	conn.Close()
	var f sessionmgr.UpdateSessionFile
	eventuallyCtl(t, "the transfer to end", func() bool {
		e.value("POST", restContent+"/library/item/updatesession/file/id:"+sid+"?~action=get", map[string]any{"file_name": "a.iso"}, &f)
		return f.Status == sessionmgr.TransferError || f.Status == sessionmgr.TransferReady
	})
	if f.Status != sessionmgr.TransferError || f.ErrorMessage == nil || !strings.Contains(f.ErrorMessage.DefaultMessage, "broke") {
		t.Errorf("file after a broken PUT: %+v %+v", f, f.ErrorMessage)
	}
	status, body := e.call("POST", restContent+"/library/item/update-session/id:"+sid+"?~action=complete", nil)
	wantError(t, "complete after a broken PUT", status, body, 400, "not_allowed_in_current_state")
}

// TestAPIPull: a PULL over the API with the source pinned by thumbprint;
// a wrong thumbprint ends the file in ERROR; probe reports the source's
// thumbprint.
func TestAPIPull(t *testing.T) {
	e := newAPIEnv(t, envOptions{})
	itemID := e.newItem("lib", "item")
	content := bytes.Repeat([]byte("pulled "), 20000)
	source := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(content)
	}))
	defer source.Close()
	thumb := sessionmgr.ThumbprintSHA1(source.Certificate())

	var probe sessionmgr.ProbeResult
	e.value("POST", restContent+"/library/item/updatesession/file?~action=probe", map[string]any{"source_endpoint": map[string]any{"uri": source.URL + "/x"}}, &probe)
	// Self-signed: not trusted, but its thumbprint is reported, for the
	// client to pin (as govc does).
	if probe.Status != sessionmgr.ProbeCertificateError || probe.SSLThumbprint != thumb {
		t.Errorf("probe: %+v, want CERTIFICATE_ERROR with %s", probe, thumb)
	}

	sid := e.newUpdateSession(itemID)
	var f sessionmgr.UpdateSessionFile
	e.value("POST", restContent+"/library/item/updatesession/file/id:"+sid+"?~action=add", map[string]any{"file_spec": map[string]any{
		"name": "bad.img", "source_type": "PULL", "source_endpoint": map[string]any{"uri": source.URL + "/bad", "ssl_certificate_thumbprint": strings.Repeat("AB:", 19) + "AB"}}}, &f)
	e.value("POST", restContent+"/library/item/updatesession/file/id:"+sid+"?~action=add", map[string]any{"file_spec": map[string]any{
		"name": "good.img", "source_type": "PULL", "size": len(content), "source_endpoint": map[string]any{"uri": source.URL + "/good", "ssl_certificate_thumbprint": thumb}}}, &f)
	if f.UploadEndpoint != nil || f.SourceEndpoint == nil {
		t.Errorf("PULL file info: %+v", f)
	}
	for _, name := range []string{"bad.img", "good.img"} {
		eventuallyCtl(t, name+" to arrive or fail", func() bool {
			e.value("POST", restContent+"/library/item/updatesession/file/id:"+sid+"?~action=get", map[string]any{"file_name": name}, &f)
			return f.Status == sessionmgr.TransferReady || f.Status == sessionmgr.TransferError
		})
		want := sessionmgr.TransferReady
		if name == "bad.img" {
			want = sessionmgr.TransferError
		}
		if f.Status != want {
			t.Errorf("%s: %s (%+v), want %s", name, f.Status, f.ErrorMessage, want)
		}
	}
	status, body := e.call("POST", restContent+"/library/item/update-session/id:"+sid+"?~action=complete", nil)
	wantError(t, "complete with a failed pull", status, body, 400, "not_allowed_in_current_state")
	e.value("POST", restContent+"/library/item/updatesession/file/id:"+sid+"?~action=remove", map[string]any{"file_name": "bad.img"}, nil)
	e.value("POST", restContent+"/library/item/update-session/id:"+sid+"?~action=complete", nil, nil)
	var files []sessionmgr.File
	e.value("GET", restContent+"/library/item/file?library_item_id="+itemID, nil, &files)
	sum := sha256.Sum256(content)
	if len(files) != 1 || files[0].Name != "good.img" || files[0].ChecksumInfo.Checksum != hex.EncodeToString(sum[:]) {
		t.Errorf("files after the pull: %+v", files)
	}
}

func ctlLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// short names content in a message: itself when short, else its digest.
func short(b []byte) string {
	if len(b) > 32 {
		sum := sha256.Sum256(b)
		return "sha256:" + hex.EncodeToString(sum[:])[:16]
	}
	return "\"" + string(b) + "\""
}

func eventuallyCtl(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if ok() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not reached", what)
}
