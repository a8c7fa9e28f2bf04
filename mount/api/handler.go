package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"reflect"
	"strconv"
	"strings"

	"clfs/mount/api/soap"
	"clfs/sessionmgr"
)

// Options are the rules of one listener: what its clients may see and do.
// The control socket and the HTTPS listener serve the same Handler with
// two option sets.
type Options struct {
	Logger *slog.Logger
	// Public is set for the HTTPS listener: lists answer ids, as
	// vSphere's do; every request but the login services and transfers
	// whose URI carries its key needs a login; and the /api dialect and
	// the /sdk endpoint are served. Nil for the control socket, whose
	// peers the socket checks: lists answer the models (one round trip,
	// one consistent view for the CLI), and only /rest and /clfs.
	Public *Public
	// OnCall, when set, is called after each operation of the table
	// with its decoded input (a pointer to the op's input type) and its
	// error: for tests and metrics.
	OnCall func(op Operation, in any, err error)
	// Counters, when set, answers GET /clfs/counters: the mount's FUSE
	// requests so far, by opcode (see counters.go).
	Counters func() map[string]uint64
}

// Public is what the HTTPS listener adds to the API.
type Public struct {
	Logins *Logins
	Keys   TransferKeys
}

// Handler serves a session manager's API: the operation table in the
// /rest dialect (and /api, when public), the data plane and fsck.
type Handler struct {
	m          *sessionmgr.Manager
	log        *slog.Logger
	public     *Public
	onCall     func(op Operation, in any, err error)
	countersFn func() map[string]uint64
	rest       *router
	api        *router // nil but on the public listener
	chain      http.Handler
}

// NewHandler serves m with the rules of opts.
func NewHandler(m *sessionmgr.Manager, opts Options) *Handler {
	h := &Handler{m: m, log: opts.Logger, public: opts.Public, onCall: opts.OnCall, countersFn: opts.Counters}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.rest = newRouter(restDialect, restPrefix, Operations)
	var chain http.Handler = http.HandlerFunc(h.serveAPI)
	if h.public != nil {
		h.api = newRouter(apiDialect, apiPrefix, Operations)
		mux := http.NewServeMux()
		mux.HandleFunc(cisSessionPath, h.cisSession)
		mux.HandleFunc(apiSessionPath, h.apiSession)
		// govc logs in over SOAP too before library.info and
		// library.import; one login store serves both.
		sdk := soap.NewHandler(h.public.Logins, h.log)
		mux.Handle("/sdk", sdk)
		mux.Handle("/sdk/", sdk)
		mux.Handle("/", h.requireLogin(chain))
		chain = mux
	}
	h.chain = h.guard(chain)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.chain.ServeHTTP(w, r) }

// guard answers, with the API's error body, the requests http.ServeMux
// would answer with a redirect or a bare status: a path that is not
// clean (empty or dot segments, "//") and the request target "*". A
// redirect would turn a client's PUT into a GET of another resource.
func (h *Handler) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		if r.RequestURI == "*" || p == "" || p[0] != '/' || cleanPath(p) != p {
			h.fail(w, r, &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("path %q is not clean: no empty, '.' or '..' segments", p)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPath is http.ServeMux's canonical form of a path: path.Clean,
// keeping a trailing slash.
func cleanPath(p string) string {
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// serveAPI dispatches a request to its operation, or to the data plane
// and fsck.
func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, dataPrefix):
		h.serveData(w, r)
	case p == fsckPath:
		if r.Method != http.MethodPost {
			h.fail(w, r, &sessionmgr.Error{Kind: sessionmgr.KindNotFound, Msg: fmt.Sprintf("no operation %s %s", r.Method, p)})
			return
		}
		h.fsck(w, r)
	case p == countersPath:
		h.counters(w, r)
	case h.api != nil && strings.HasPrefix(p, apiPrefix+"/"):
		op, params, err := h.api.match(r)
		if err != nil {
			h.failIn(apiDialect, w, r, err)
			return
		}
		h.serveOp(apiDialect, op, params, w, r)
	default:
		op, params, err := h.rest.match(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.serveOp(restDialect, op, params, w, r)
	}
}

// serveOp decodes the input of op from r in dialect d, runs it and
// answers.
func (h *Handler) serveOp(d dialect, op Operation, params map[string]string, w http.ResponseWriter, r *http.Request) {
	in, err := decodeInput(d, op, params, r)
	if err != nil {
		h.failIn(d, w, r, err)
		return
	}
	out, err := op.invoke(r.Context(), h.m, in)
	if h.onCall != nil {
		h.onCall(op, in, err)
	}
	if err != nil {
		h.failIn(d, w, r, err)
		return
	}
	if h.public != nil && op.lists() {
		out = ids(out)
	}
	// A list is [], never null.
	if rv := reflect.ValueOf(out); rv.Kind() == reflect.Slice && rv.IsNil() {
		out = []struct{}{}
	}
	_, void := out.(NoResult)
	switch {
	case d == restDialect && void:
		w.WriteHeader(http.StatusOK)
	case d == restDialect:
		writeJSON(w, http.StatusOK, valueBody{out})
	case void:
		w.WriteHeader(http.StatusNoContent)
	case op.createsResource():
		writeJSON(w, http.StatusCreated, out)
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

// decodeInput is op's input as r spells it in dialect d.
func decodeInput(d dialect, op Operation, params map[string]string, r *http.Request) (any, error) {
	in := op.newInput()
	b := op.binding(d)
	if target, apply := b.bodyTarget(in); target != nil {
		if err := decodeBody(r, target); err != nil {
			return nil, err
		}
		apply()
	}
	q := r.URL.Query()
	var err error
	b.setPlaced(in, func(where, name string) (string, bool) {
		switch where {
		case "id":
			seg := params["id"]
			id, ok := strings.CutPrefix(seg, "id:")
			if !ok && err == nil {
				err = &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("path segment %q: want id:{id}", seg)}
			}
			return id, true
		case "path":
			v, ok := params[name]
			return v, ok
		case "query":
			return q.Get(name), q.Has(name)
		default: // header
			v := r.Header.Values(name)
			if len(v) == 0 {
				return "", false
			}
			return v[0], true
		}
	})
	return in, err
}

// ids is a list of models as a list of their ids.
func ids(list any) []string {
	rv := reflect.ValueOf(list)
	out := make([]string, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).FieldByName("ID").String()
	}
	return out
}

// maxBody bounds a JSON request body.
const maxBody = 1 << 20

// decodeBody decodes a JSON body into v; an empty body leaves v as it is
// (actions without parameters, keep-alive without progress).
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	if err := dec.Decode(v); err != nil && err != io.EOF {
		return &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("request body: %v", err)}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		var body errorBody
		status, body = EncodeError(fmt.Errorf("encode response: %w", err))
		b, _ = json.Marshal(body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// fail answers err in the /rest form.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.failIn(restDialect, w, r, err)
}

// failIn answers err in dialect d, and logs it: one line, at Debug for
// the API's own errors (a client asking for something missing) and for a
// client that went away (its request's context ended: a server error no
// one will read), at Error otherwise.
func (h *Handler) failIn(d dialect, w http.ResponseWriter, r *http.Request, err error) {
	level := slog.LevelDebug
	if sessionmgr.KindOf(err) == sessionmgr.KindError && r.Context().Err() == nil {
		level = slog.LevelError
	}
	h.log.Log(r.Context(), level, "API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(d, w, err)
}

func writeError(d dialect, w http.ResponseWriter, err error) {
	status, body := EncodeError(err)
	if d == apiDialect {
		writeJSON(w, status, apiErrorBody{
			ErrorType: strings.ToUpper(strings.TrimPrefix(body.Type, errorTypePrefix)),
			Messages:  body.Value.Messages,
		})
		return
	}
	writeJSON(w, status, body)
}

// apiErrorBody is the /api error body (spec §0.2).
type apiErrorBody struct {
	ErrorType string               `json:"error_type"`
	Messages  []sessionmgr.Message `json:"messages"`
}

// errServerClosing answers requests that arrive while a server closes.
var errServerClosing = errors.New("the server is shutting down")
