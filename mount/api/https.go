package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"clfs/sessionmgr"
)

// The HTTPS API: the session manager's vSphere /rest surface for VMware
// tooling (govc, govmomi, the vSphere Automation SDKs), served by
// `clfs serve` and `clfs mount --listen`.
//
// It is the control socket's Handler with the Public options: lists
// answer ids, as vSphere's do; every request but the login needs the
// token of a login (logins.go), in the vmware-api-session-id header or
// cookie; the /api dialect and /sdk are served; and PUSH files and
// prepared download files get https transfer URIs on this listener.
//
// A transfer URI works with the token, as govc sends it, or without, as
// VMware's own SDK samples PUT and GET: it carries a key, an HMAC of the
// file's session and name under a secret of the home, so it is a
// capability only its recipient (a logged-in client) holds. Knowing a
// session's id, which lists and logs show, is not enough.

// APISessionHeader carries the token of a login, as on vCenter.
const APISessionHeader = "vmware-api-session-id"

// The login services of the two dialects.
const (
	cisSessionPath = "/rest/com/vmware/cis/session"
	apiSessionPath = "/api/session"
)

// ListenOptions configures the HTTPS listener.
type ListenOptions struct {
	// Listen is host:port; port 0 picks a free one.
	Listen string
	// Advertise is the host (and port) clients reach the listener at,
	// used in the upload and download URIs the API hands out. Empty: the
	// listen host, or this machine's name when that is a wildcard.
	Advertise string
	// CertFile and KeyFile are a certificate to serve; both empty: the
	// home's self-signed one, made on first start.
	CertFile, KeyFile string
	Credentials       Credentials
	// LoginIdle is how long a login lives without requests; zero is
	// DefaultLoginIdle.
	LoginIdle time.Duration
}

// Listener is the bound HTTPS socket. It exists before the session
// manager opens, because the manager's transfer URIs name its port.
type Listener struct {
	ln     net.Listener
	cert   tls.Certificate
	base   string // https://host:port
	logins *Logins
	keys   TransferKeys
}

// Listen binds the API's address and loads (or makes) its certificate.
func Listen(home string, opts ListenOptions) (*Listener, error) {
	logins, err := NewLogins(opts.Credentials, opts.LoginIdle, nil)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: want HOST:PORT (e.g. :8443 or 127.0.0.1:8443): %w", opts.Listen, err)
	}
	advertise := opts.Advertise
	if advertise == "" {
		advertise = host
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			if advertise, err = os.Hostname(); err != nil {
				return nil, fmt.Errorf("the listen address has no host and the machine's name is unknown (%v): give --advertise", err)
			}
		}
	}
	advHost := advertise
	if h, _, err := net.SplitHostPort(advertise); err == nil {
		advHost = h
	}
	cert, err := serverCertificate(home, opts.CertFile, opts.KeyFile, []string{advHost})
	if err != nil {
		return nil, err
	}
	key, err := loadTransferKey(home)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("API listener: %w", err)
	}
	if _, _, err := net.SplitHostPort(advertise); err != nil {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		advertise = net.JoinHostPort(advertise, port)
	}
	return &Listener{
		ln:     tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
		cert:   cert,
		base:   "https://" + advertise,
		logins: logins,
		keys:   TransferKeys{secret: key},
	}, nil
}

// URL is the listener's base URL as clients are told it.
func (l *Listener) URL() string { return l.base }

// Addr is the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Thumbprint is the SHA-1 thumbprint of the served certificate, as
// vCenter shows one.
func (l *Listener) Thumbprint() string { return sessionmgr.ThumbprintSHA1(l.cert.Leaf) }

// Close releases a listener that was never served.
func (l *Listener) Close() error { return l.ln.Close() }

// Endpoints mints the transfer URIs of files on this listener.
func (l *Listener) Endpoints() sessionmgr.Endpoints {
	return apiEndpoints{base: l.base, keys: l.keys}
}

type apiEndpoints struct {
	base string
	keys TransferKeys
}

func (e apiEndpoints) UploadURI(sessionID, fileName string) string {
	return e.uri("update-session", sessionID, fileName)
}

func (e apiEndpoints) DownloadURI(sessionID, fileName string) string {
	return e.uri("download-session", sessionID, fileName)
}

func (e apiEndpoints) uri(kind, sessionID, fileName string) string {
	return e.base + DataPath(kind, sessionID, fileName) + "?" + transferKeyParam + "=" + e.keys.of(kind, sessionID, fileName)
}

// transferKeyParam carries a transfer URI's key.
const transferKeyParam = "x_transfer_key"

// TransferKeys are the keys of transfer URIs.
type TransferKeys struct{ secret []byte }

func (k TransferKeys) of(kind, sessionID, fileName string) string {
	mac := hmac.New(sha256.New, k.secret)
	// NUL cannot be in an id or a file name: the fields cannot run
	// into each other.
	mac.Write([]byte(kind + "\x00" + sessionID + "\x00" + fileName))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// allows reports whether r is a data-plane request whose URI carries the
// key of the file it names.
func (k TransferKeys) allows(r *http.Request) bool {
	given := r.URL.Query().Get(transferKeyParam)
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), dataPrefix)
	if given == "" || !ok || len(k.secret) == 0 {
		return false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return false
	}
	for i, p := range parts {
		var err error
		if parts[i], err = url.PathUnescape(p); err != nil {
			return false
		}
	}
	return hmac.Equal([]byte(given), []byte(k.of(parts[0], parts[1], parts[2])))
}

// ServeHTTPS serves m on l, with opts and the listener's logins and
// transfer keys, until the returned server is closed (which also closes
// l).
func ServeHTTPS(m *sessionmgr.Manager, l *Listener, opts Options) *Server {
	opts.Public = &Public{Logins: l.logins, Keys: l.keys}
	return Serve(l.ln, NewHandler(m, opts), opts.Logger)
}

// requireLogin refuses requests without the token of a live login, but
// for transfers whose URI carries its key.
func (h *Handler) requireLogin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, _, ok := h.public.Logins.Lookup(sessionToken(r)); !ok && !h.public.Keys.allows(r) {
			d := restDialect
			if strings.HasPrefix(r.URL.Path, apiPrefix+"/") {
				d = apiDialect
			}
			h.failIn(d, w, r, unauthenticated(r))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func unauthenticated(r *http.Request) error {
	if sessionToken(r) == "" {
		return &sessionmgr.Error{Kind: sessionmgr.KindUnauthenticated, Msg: "no " + APISessionHeader + ": log in with POST " + cisSessionPath + " and Basic authentication"}
	}
	return &sessionmgr.Error{Kind: sessionmgr.KindUnauthenticated, Msg: "the " + APISessionHeader + " is unknown or expired: log in again"}
}

// sessionToken is the login token a request carries, header first.
func sessionToken(r *http.Request) string {
	if t := r.Header.Get(APISessionHeader); t != "" {
		return t
	}
	if c, err := r.Cookie(APISessionHeader); err == nil {
		return c.Value
	}
	return ""
}

// apiSessionInfo is cis.Session.Info.
type apiSessionInfo struct {
	User         string    `json:"user"`
	Created      time.Time `json:"created_time"`
	LastAccessed time.Time `json:"last_accessed_time"`
}

// cisSession is the /rest session service: POST logs in (Basic
// authentication), POST ?~action=get describes the caller's session,
// DELETE logs out.
func (h *Handler) cisSession(w http.ResponseWriter, r *http.Request) {
	h.sessionService(w, r, r.URL.Query().Get(actionParam) == "get", true)
}

// apiSession is the /api form of the same: POST logs in, GET describes,
// DELETE logs out; bodies are not wrapped and void answers are 204.
func (h *Handler) apiSession(w http.ResponseWriter, r *http.Request) {
	h.sessionService(w, r, r.Method == http.MethodGet, false)
}

// sessionService serves both forms of the session service; rest is the
// /rest form: results wrapped in {"value": ...}, 200 for every success.
func (h *Handler) sessionService(w http.ResponseWriter, r *http.Request, describe, rest bool) {
	answer := func(status int, v any) {
		if rest {
			writeJSON(w, http.StatusOK, valueBody{v})
			return
		}
		writeJSON(w, status, v)
	}
	switch {
	case describe && (r.Method == http.MethodPost || r.Method == http.MethodGet):
		user, created, last, ok := h.public.Logins.Lookup(sessionToken(r))
		if !ok {
			h.fail(w, r, unauthenticated(r))
			return
		}
		answer(http.StatusOK, apiSessionInfo{User: user, Created: created.UTC(), LastAccessed: last.UTC()})
	case r.Method == http.MethodPost && r.URL.Query().Get(actionParam) == "":
		user, password, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="clfs"`)
			h.fail(w, r, &sessionmgr.Error{Kind: sessionmgr.KindUnauthenticated, Msg: "log in with Basic authentication"})
			return
		}
		token, err := h.public.Logins.Login(user, password)
		if err != nil {
			// One line per refused login, for whoever watches for
			// guessing; the client learns only that it failed.
			h.log.Warn("API login refused", "user", user, "remote", r.RemoteAddr, "err", err)
			kind := sessionmgr.KindUnauthenticated
			if !errors.Is(err, errBadLogin) {
				kind = sessionmgr.KindError
			}
			h.fail(w, r, &sessionmgr.Error{Kind: kind, Err: err, Msg: err.Error()})
			return
		}
		http.SetCookie(w, &http.Cookie{Name: APISessionHeader, Value: token, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		answer(http.StatusCreated, token)
	case r.Method == http.MethodDelete:
		token := sessionToken(r)
		if _, _, _, ok := h.public.Logins.Lookup(token); !ok {
			h.fail(w, r, unauthenticated(r))
			return
		}
		h.public.Logins.Logout(token)
		if rest {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		h.fail(w, r, &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("no operation %s %s", r.Method, r.URL.RequestURI())})
	}
}
