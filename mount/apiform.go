package mount

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"clfs/sessionmgr"
)

// The /api form of the content library API (vSphere 7.0 U2 and later,
// spec §9.1): ids in the path, ?action=, the spec as the body itself,
// client_token in a header, bare results, 204 for void and 201 for
// creates, and {"error_type": ..., "messages": [...]} errors. Each /api
// route is rewritten into its /rest call, served by the same handlers,
// and the answer is reshaped: one set of rules, two spellings.

// apiRoute is one /api operation: how to spell it on /rest.
type apiRoute struct {
	pattern string
	// rest returns the /rest method, path (with query) and body.
	rest   func(r *http.Request, body json.RawMessage) (method, path string, restBody any)
	create bool // without ?action=, answers 201 with the new id
}

func apiRoutes() []apiRoute {
	p := restPrefix + "/"
	id := func(r *http.Request, name string) string { return "id:" + url.PathEscape(r.PathValue(name)) }
	q := func(r *http.Request) string {
		if r.URL.RawQuery == "" {
			return ""
		}
		return "?" + r.URL.RawQuery
	}
	token := func(r *http.Request) string { return r.Header.Get("Client-Token") }
	same := func(method, path string) func(*http.Request, json.RawMessage) (string, string, any) {
		return func(r *http.Request, b json.RawMessage) (string, string, any) { return method, path + q(r), nil }
	}
	var routes []apiRoute
	add := func(pattern string, create bool, f func(*http.Request, json.RawMessage) (string, string, any)) {
		routes = append(routes, apiRoute{pattern: pattern, rest: f, create: create})
	}
	a := "/api/content/"

	// Libraries.
	add("GET "+a+"library", false, same("GET", p+"library"))
	add("POST "+a+"library", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
		return "POST", p + "library?~action=" + r.URL.Query().Get("action"), map[string]any{"spec": b}
	})
	for _, kind := range []string{"library", "local-library"} {
		add("GET "+a+kind+"/{id}", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
			return "GET", p + kind + "/" + id(r, "id"), nil
		})
		add("PATCH "+a+kind+"/{id}", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
			return "PATCH", p + kind + "/" + id(r, "id"), map[string]any{"update_spec": b}
		})
	}
	add("GET "+a+"local-library", false, same("GET", p+"local-library"))
	add("POST "+a+"local-library", true, func(r *http.Request, b json.RawMessage) (string, string, any) {
		return "POST", p + "local-library", map[string]any{"create_spec": b, "client_token": token(r)}
	})
	add("DELETE "+a+"local-library/{id}", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
		return "DELETE", p + "local-library/" + id(r, "id"), nil
	})

	// Items, their files and storage.
	add("GET "+a+"library/item", false, same("GET", p+"library/item"))
	add("POST "+a+"library/item", true, func(r *http.Request, b json.RawMessage) (string, string, any) {
		if action := r.URL.Query().Get("action"); action != "" {
			return "POST", p + "library/item?~action=" + url.QueryEscape(action), map[string]any{"spec": b}
		}
		return "POST", p + "library/item", map[string]any{"create_spec": b, "client_token": token(r)}
	})
	for _, method := range []string{"GET", "DELETE"} {
		add(method+" "+a+"library/item/{id}", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
			return method, p + "library/item/" + id(r, "id"), nil
		})
	}
	add("PATCH "+a+"library/item/{id}", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
		return "PATCH", p + "library/item/" + id(r, "id"), map[string]any{"update_spec": b}
	})
	add("GET "+a+"library/item/{id}/file", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
		if r.URL.Query().Has("name") {
			return "POST", p + "library/item/file/" + id(r, "id") + "?~action=get", map[string]any{"name": r.URL.Query().Get("name")}
		}
		return "GET", p + "library/item/file?library_item_id=" + url.QueryEscape(r.PathValue("id")), nil
	})
	add("GET "+a+"library/item/{id}/storage", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
		if r.URL.Query().Has("file_name") {
			return "POST", p + "library/item/storage/" + id(r, "id") + "?~action=get", map[string]any{"file_name": r.URL.Query().Get("file_name")}
		}
		return "GET", p + "library/item/storage?library_item_id=" + url.QueryEscape(r.PathValue("id")), nil
	})

	// Update and download sessions, and their files.
	for _, kind := range []string{"update-session", "download-session"} {
		files := strings.ReplaceAll(kind, "-", "") + "/file"
		add("GET "+a+"library/item/"+kind, false, same("GET", p+"library/item/"+kind))
		add("POST "+a+"library/item/"+kind, true, func(r *http.Request, b json.RawMessage) (string, string, any) {
			return "POST", p + "library/item/" + kind, map[string]any{"create_spec": b, "client_token": token(r)}
		})
		for _, method := range []string{"GET", "DELETE"} {
			add(method+" "+a+"library/item/"+kind+"/{id}", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
				return method, p + "library/item/" + kind + "/" + id(r, "id"), nil
			})
		}
		add("POST "+a+"library/item/"+kind+"/{id}", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
			return "POST", p + "library/item/" + kind + "/" + id(r, "id") + "?~action=" + url.QueryEscape(r.URL.Query().Get("action")), b
		})
		add("GET "+a+"library/item/"+kind+"/{id}/file", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
			if r.URL.Query().Has("file_name") {
				return "POST", p + "library/item/" + files + "/" + id(r, "id") + "?~action=get", map[string]any{"file_name": r.URL.Query().Get("file_name")}
			}
			param := "update_session_id"
			if kind == "download-session" {
				param = "download_session_id"
			}
			return "GET", p + "library/item/" + files + "?" + param + "=" + url.QueryEscape(r.PathValue("id")), nil
		})
		add("POST "+a+"library/item/"+kind+"/{id}/file", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
			action := r.URL.Query().Get("action")
			switch {
			case kind == "update-session" && action == "":
				return "POST", p + "library/item/" + files + "/" + id(r, "id") + "?~action=add", map[string]any{"file_spec": b}
			default: // validate; prepare, whose body is already the parameters
				return "POST", p + "library/item/" + files + "/" + id(r, "id") + "?~action=" + url.QueryEscape(action), b
			}
		})
	}
	add("PATCH "+a+"library/item/update-session/{id}", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
		return "PATCH", p + "library/item/update-session/" + id(r, "id"), map[string]any{"update_spec": b}
	})
	add("GET "+a+"library/item/update-session/{id}/file/{name}", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
		return "POST", p + "library/item/updatesession/file/" + id(r, "id") + "?~action=get", map[string]any{"file_name": r.PathValue("name")}
	})
	add("DELETE "+a+"library/item/update-session/{id}/file/{name}", false, func(r *http.Request, b json.RawMessage) (string, string, any) {
		return "POST", p + "library/item/updatesession/file/" + id(r, "id") + "?~action=remove", map[string]any{"file_name": r.PathValue("name")}
	})
	return routes
}

// apiForm serves the /api routes on mux through restHandler.
func (s *ControlServer) apiForm(mux *http.ServeMux, restHandler http.Handler) {
	// Two muxes: ".../item/{id}/file" and ".../item/update-session/{id}"
	// both match ".../item/update-session/file", which ServeMux refuses
	// to choose between; a session id never is a literal "file".
	items, sessions := http.NewServeMux(), http.NewServeMux()
	items.Handle("/", restHandler)
	sessions.Handle("/", restHandler)
	mux.HandleFunc("/api/content/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/content/library/item/update-session") || strings.HasPrefix(r.URL.Path, "/api/content/library/item/download-session") {
			sessions.ServeHTTP(w, r)
			return
		}
		items.ServeHTTP(w, r)
	})
	for _, rt := range apiRoutes() {
		target := items
		if strings.Contains(rt.pattern, "-session") {
			target = sessions
		}
		target.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			var body json.RawMessage
			if r.Body != nil {
				b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
				if err != nil {
					s.failAPIForm(w, r, &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("request body: %v", err)})
					return
				}
				if len(bytes.TrimSpace(b)) > 0 {
					if !json.Valid(b) {
						s.failAPIForm(w, r, &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: "request body is not JSON"})
						return
					}
					body = b
				}
			}
			method, path, restBody := rt.rest(r, body)
			var rb []byte
			if restBody != nil {
				if raw, ok := restBody.(json.RawMessage); ok {
					rb = raw
				} else {
					var err error
					if rb, err = json.Marshal(restBody); err != nil {
						s.failAPIForm(w, r, err)
						return
					}
				}
			}
			u, err := url.ParseRequestURI(path)
			if err != nil {
				s.failAPIForm(w, r, &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: err.Error()})
				return
			}
			inner := r.Clone(r.Context())
			inner.Method, inner.URL, inner.RequestURI = method, u, u.RequestURI()
			inner.Body, inner.ContentLength = io.NopCloser(bytes.NewReader(rb)), int64(len(rb))
			rec := &bufferedAnswer{header: http.Header{}}
			restHandler.ServeHTTP(rec, inner)
			s.reshape(w, rec, rt.create && r.URL.Query().Get("action") == "")
		})
	}
}

// bufferedAnswer keeps a /rest answer for reshaping; /rest answers outside
// the data plane are small JSON documents.
type bufferedAnswer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedAnswer) Header() http.Header { return b.header }
func (b *bufferedAnswer) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferedAnswer) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

// reshape writes a /rest answer in the /api form.
func (s *ControlServer) reshape(w http.ResponseWriter, rec *bufferedAnswer, create bool) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status != http.StatusOK {
		var eb errorBody
		if err := json.Unmarshal(rec.body.Bytes(), &eb); err != nil {
			writeJSON(w, rec.status, json.RawMessage(rec.body.Bytes()))
			return
		}
		writeJSON(w, rec.status, apiErrorBody{
			ErrorType: strings.ToUpper(strings.TrimPrefix(eb.Type, errorTypePrefix)),
			Messages:  eb.Value.Messages,
		})
		return
	}
	if rec.body.Len() == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var v struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &v); err != nil {
		writeJSON(w, http.StatusInternalServerError, apiErrorBody{ErrorType: "ERROR", Messages: []sessionmgr.Message{{ID: "clfs.error", DefaultMessage: "reshape answer: " + err.Error(), Args: []string{}}}})
		return
	}
	status := http.StatusOK
	if create {
		status = http.StatusCreated
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(v.Value)))
	w.WriteHeader(status)
	w.Write(v.Value)
}

// apiErrorBody is the /api error body (spec §0.2).
type apiErrorBody struct {
	ErrorType string               `json:"error_type"`
	Messages  []sessionmgr.Message `json:"messages"`
}

func (s *ControlServer) failAPIForm(w http.ResponseWriter, r *http.Request, err error) {
	status, body := encodeError(err)
	s.log.Debug("API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeJSON(w, status, apiErrorBody{ErrorType: strings.ToUpper(strings.TrimPrefix(body.Type, errorTypePrefix)), Messages: body.Value.Messages})
}
