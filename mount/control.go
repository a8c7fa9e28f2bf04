package mount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"clfs/sessionmgr"
)

// ErrMountRunning is returned by ServeControl when another live mount
// answers on the socket.
var ErrMountRunning = errors.New("another clfs mount serves this home")

// shutdownGrace is how long Close lets requests in flight finish before
// cutting them off.
const shutdownGrace = 5 * time.Second

// ControlServer serves a session manager on a control socket.
//
// A running mount holds the catalog's Badger lock, so no other process can
// open the home. The mount therefore serves its session manager on
// $CLFS_HOME/clfs.sock, and the clfs commands use it when it answers.
//
// The API is HTTP with JSON bodies, shaped as the vSphere /rest surface
// (spec §9): the same resource names under /rest/com/vmware/content
// (library, local-library, library/item, library/item/file, ...), ids as
// /id:{id}, actions as ?~action=, parameters wrapped by name, results as
// {"value": ...}, errors as {"type": "com.vmware.vapi.std.errors.*",
// "value": {"messages": [...]}} with the HTTP status of spec §0.2.
// clfs departs from /rest where a local front end needs it: lists return
// the models rather than ids (one round trip, one consistent view), and
// the extensions below start with /clfs or a query parameter:
//
//	GET  …/library?name=N                    LibraryByName
//	GET  …/library/item?library_id=L&name=N  ItemByName
//	PUT  /clfs/data/update-session/{id}/{file}    stream a PUSH file; answers its updatesession file info
//	GET  /clfs/data/download-session/{id}/{file}  read a file (Range requests welcome)
//	POST /clfs/fsck[?x_progress=true]        Fsck; with progress, NDJSON lines
//	GET  /clfs/info                          the home and pid of the mount
//
// The socket is created with mode 0600 in the home, and every connection
// is checked with SO_PEERCRED: only root and the user running the mount
// get in.
type ControlServer struct {
	// dependencies
	m   *sessionmgr.Manager
	log *slog.Logger

	// constant after ServeControl
	readOnly bool
	// public is the HTTPS API (ServeAPI): lists answer ids, as
	// vSphere's do, and every call but the login needs a session.
	public       bool
	sessions     *apiSessions // the logins of a public server
	transferKeys transferKeys // of a public server's transfer URIs
	path         string
	socket       os.FileInfo // the file we created, so that Close removes only it
	srv          *http.Server
	served       chan struct{} // closed when Serve returns

	mu       sync.Mutex
	closed   bool           // GUARDED_BY(mu)
	inFlight sync.WaitGroup // Add only under mu while !closed

	closeOnce sync.Once
	closeErr  error
}

// ServeControl serves m on a unix socket at socketPath, with mode 0600. A
// stale socket (nothing answers) is replaced; a live one is refused with
// ErrMountRunning.
func ServeControl(m *sessionmgr.Manager, socketPath string, log *slog.Logger) (*ControlServer, error) {
	return ServeControlWith(m, socketPath, log, ControlOptions{})
}

// ControlOptions configures ServeControlWith.
type ControlOptions struct {
	// ReadOnly refuses every request that would change the catalog (a
	// --read-only mount): reads, finds, download sessions and fsck are
	// served; the rest gets an Unauthorized error whose cause is
	// ErrReadOnly.
	ReadOnly bool
}

// ErrReadOnly is the cause of a change refused by a read-only mount's
// control socket.
var ErrReadOnly = errors.New("the mount is read-only")

// ServeControlWith is ServeControl with options.
func ServeControlWith(m *sessionmgr.Manager, socketPath string, log *slog.Logger, opts ControlOptions) (*ControlServer, error) {
	owner := uint32(os.Geteuid())
	return serveControl(m, socketPath, log, opts, func(uid uint32) bool { return peerAllowed(uid, owner) })
}

// peerAllowed is the access rule: root and the socket's owner.
func peerAllowed(uid, owner uint32) bool { return uid == 0 || uid == owner }

func serveControl(m *sessionmgr.Manager, path string, log *slog.Logger, opts ControlOptions, allow func(uid uint32) bool) (*ControlServer, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	var ln *net.UnixListener
	err := withSocketName(path, func(name string) error {
		var err error
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// The name may be a /proc/self/fd path: Close removes the socket by
	// its real path instead.
	ln.SetUnlinkOnClose(false)
	// Listen created the socket under the umask; the peer check below
	// covers the moment before this chmod.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	st, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s := &ControlServer{m: m, log: log, readOnly: opts.ReadOnly, path: path, socket: st, served: make(chan struct{})}
	s.serve(&peerCheckListener{UnixListener: ln, allow: allow, log: log}, s.handler())
	return s, nil
}

// serve answers requests on ln with h until Close.
func (s *ControlServer) serve(ln net.Listener, h http.Handler) {
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("API listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// removeStaleSocket removes a socket file nothing answers on (its mount
// was killed), and refuses a live one or a file that is not a socket.
func removeStaleSocket(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if st.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket %s exists and is not a socket: remove it if no clfs mount uses this home", path)
	}
	c, err := dialSocket(context.Background(), path)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("%w: %s answers", ErrMountRunning, path)
	case errors.Is(err, syscall.ECONNREFUSED):
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale control socket: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("control socket %s: %w", path, err)
	}
}

// dialSocket connects to the socket at path, however deep.
func dialSocket(ctx context.Context, path string) (net.Conn, error) {
	var c net.Conn
	err := withSocketName(path, func(name string) error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, "unix", name)
		return err
	})
	return c, err
}

// Close stops serving: requests in flight get shutdownGrace to finish,
// then their connections are cut; it returns once every handler is done
// with the session manager, and removes the socket.
func (s *ControlServer) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		if err := s.srv.Shutdown(ctx); err != nil {
			s.log.Warn("control socket: cutting requests still running", "err", err)
			s.srv.Close()
		}
		cancel()
		<-s.served
		s.inFlight.Wait()
		if s.path == "" { // a TCP listener
			return
		}
		if st, err := os.Lstat(s.path); err == nil && os.SameFile(st, s.socket) {
			if err := os.Remove(s.path); err != nil {
				s.closeErr = fmt.Errorf("remove control socket: %w", err)
			}
		}
	})
	return s.closeErr
}

// Path is the socket's path.
func (s *ControlServer) Path() string { return s.path }

// track counts handlers, so that Close can wait for them before the
// manager is closed.
func (s *ControlServer) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			s.fail(w, r, &sessionmgr.Error{Kind: sessionmgr.KindResourceInaccessible, Msg: "the mount is shutting down"})
			return
		}
		s.inFlight.Add(1)
		s.mu.Unlock()
		defer s.inFlight.Done()
		h.ServeHTTP(w, r)
	})
}

// handler is the whole chain a request goes through.
func (s *ControlServer) handler() http.Handler {
	if s.public {
		return s.track(s.guard(s.publicRoutes()))
	}
	return s.track(s.guard(s.routes()))
}

// guard answers, with the API's error body, the requests http.ServeMux
// would answer with a redirect or a bare status: a path that is not
// clean (empty or dot segments, "//") and the request target "*". A
// redirect would turn a client's PUT into a GET of another resource.
func (s *ControlServer) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath() // what the mux cleans
		if r.RequestURI == "*" || p == "" || p[0] != '/' || cleanPath(p) != p {
			s.fail(w, r, &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("path %q is not clean: no empty, '.' or '..' segments", p)})
			return
		}
		h.ServeHTTP(w, r)
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

// peerCheckListener drops connections from users the rule does not allow.
type peerCheckListener struct {
	*net.UnixListener
	allow func(uid uint32) bool
	log   *slog.Logger
}

func (l *peerCheckListener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && l.allow(uid) {
			return c, nil
		}
		l.log.Warn("control socket: connection refused", "uid", uid, "err", err)
		c.Close()
	}
}

// peerUID is the uid of the process at the other end (SO_PEERCRED).
func peerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	return cred.Uid, nil
}

// ---- routes

// op is one API call: it decodes the request, calls the manager, and
// returns the result (nil for none) or an error.
type op func(r *http.Request) (any, error)

func (s *ControlServer) routes() *http.ServeMux {
	mux := http.NewServeMux()
	api := func(pattern string, fn op) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := s.refuseChange(pattern, r); err != nil {
				s.fail(w, r, err)
				return
			}
			v, err := fn(r)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			if v == nil { // a void operation: 200, empty body
				w.WriteHeader(http.StatusOK)
				return
			}
			// A list is [], never null.
			if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.IsNil() {
				v = []struct{}{}
			}
			writeJSON(w, http.StatusOK, valueBody{v})
		})
	}
	m := s.m
	p := restPrefix + "/"

	api("GET "+p+"library", func(r *http.Request) (any, error) {
		if q := r.URL.Query(); q.Has("name") {
			return m.LibraryByName(r.Context(), q.Get("name"))
		}
		return s.listed(m.ListLibraries(r.Context()))
	})
	api("GET "+p+"local-library", func(r *http.Request) (any, error) {
		return s.listed(m.ListLibraries(r.Context()))
	})
	api("POST "+p+"library", func(r *http.Request) (any, error) {
		if err := wantAction(r, "find"); err != nil {
			return nil, err
		}
		var b struct {
			Spec sessionmgr.LibraryFindSpec `json:"spec"`
		}
		if err := decodeBody(r, &b); err != nil {
			return nil, err
		}
		return m.FindLibraries(r.Context(), b.Spec)
	})
	api("GET "+p+"library/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) { return m.GetLibrary(r.Context(), id) })
	})
	api("GET "+p+"local-library/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) { return m.GetLibrary(r.Context(), id) })
	})
	updateLibrary := func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) {
			var b struct {
				Spec sessionmgr.LibraryUpdateSpec `json:"update_spec"`
			}
			if err := decodeBody(r, &b); err != nil {
				return nil, err
			}
			return nil, m.UpdateLibrary(r.Context(), id, b.Spec)
		})
	}
	api("PATCH "+p+"library/{id}", updateLibrary)
	api("PATCH "+p+"local-library/{id}", updateLibrary)
	api("POST "+p+"local-library", func(r *http.Request) (any, error) {
		var b struct {
			Spec  sessionmgr.LibraryCreateSpec `json:"create_spec"`
			Token string                       `json:"client_token"`
		}
		if err := decodeBody(r, &b); err != nil {
			return nil, err
		}
		return m.CreateLibrary(r.Context(), b.Spec, b.Token)
	})
	api("DELETE "+p+"local-library/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) { return nil, m.DeleteLibrary(r.Context(), id) })
	})

	api("GET "+p+"library/item", func(r *http.Request) (any, error) {
		q := r.URL.Query()
		if q.Has("name") {
			return m.ItemByName(r.Context(), q.Get("library_id"), q.Get("name"))
		}
		return s.listed(m.ListItems(r.Context(), q.Get("library_id")))
	})
	api("POST "+p+"library/item", func(r *http.Request) (any, error) {
		var b struct {
			CreateSpec sessionmgr.ItemCreateSpec `json:"create_spec"`
			Token      string                    `json:"client_token"`
			FindSpec   sessionmgr.ItemFindSpec   `json:"spec"`
		}
		if err := decodeBody(r, &b); err != nil {
			return nil, err
		}
		switch actionOf(r) {
		case "":
			return m.CreateItem(r.Context(), b.CreateSpec, b.Token)
		case "find":
			return m.FindItems(r.Context(), b.FindSpec)
		}
		return nil, unknownAction(r)
	})
	api("GET "+p+"library/item/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) { return m.GetItem(r.Context(), id) })
	})
	api("PATCH "+p+"library/item/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) {
			var b struct {
				Spec sessionmgr.ItemUpdateSpec `json:"update_spec"`
			}
			if err := decodeBody(r, &b); err != nil {
				return nil, err
			}
			return nil, m.UpdateItem(r.Context(), id, b.Spec)
		})
	})
	api("DELETE "+p+"library/item/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) { return nil, m.DeleteItem(r.Context(), id) })
	})

	api("GET "+p+"library/item/file", func(r *http.Request) (any, error) {
		return m.ListFiles(r.Context(), r.URL.Query().Get("library_item_id"))
	})
	api("POST "+p+"library/item/file/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) {
			if err := wantAction(r, "get"); err != nil {
				return nil, err
			}
			var b struct {
				Name string `json:"name"`
			}
			if err := decodeBody(r, &b); err != nil {
				return nil, err
			}
			return m.GetFile(r.Context(), id, b.Name)
		})
	})
	api("GET "+p+"library/item/storage", func(r *http.Request) (any, error) {
		return m.ListStorage(r.Context(), r.URL.Query().Get("library_item_id"))
	})
	api("POST "+p+"library/item/storage/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) {
			if err := wantAction(r, "get"); err != nil {
				return nil, err
			}
			var b struct {
				Name string `json:"file_name"`
			}
			if err := decodeBody(r, &b); err != nil {
				return nil, err
			}
			return m.GetStorage(r.Context(), id, b.Name)
		})
	})

	api("GET "+p+"library/item/update-session", func(r *http.Request) (any, error) {
		return s.listed(m.ListUpdateSessions(r.Context(), r.URL.Query().Get("library_item_id")))
	})
	api("POST "+p+"library/item/update-session", func(r *http.Request) (any, error) {
		var b struct {
			Spec  sessionmgr.UpdateSessionCreateSpec `json:"create_spec"`
			Token string                             `json:"client_token"`
		}
		if err := decodeBody(r, &b); err != nil {
			return nil, err
		}
		return m.CreateUpdateSession(r.Context(), b.Spec, b.Token)
	})
	api("GET "+p+"library/item/update-session/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) { return m.GetUpdateSession(r.Context(), id) })
	})
	api("PATCH "+p+"library/item/update-session/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) {
			var b struct {
				Spec sessionmgr.UpdateSessionUpdateSpec `json:"update_spec"`
			}
			if err := decodeBody(r, &b); err != nil {
				return nil, err
			}
			return nil, m.UpdateUpdateSession(r.Context(), id, b.Spec)
		})
	})
	api("DELETE "+p+"library/item/update-session/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) { return nil, m.DeleteUpdateSession(r.Context(), id) })
	})
	api("POST "+p+"library/item/update-session/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) {
			ctx := r.Context()
			var b struct {
				Progress *int64 `json:"client_progress"`
				Message  string `json:"client_error_message"`
			}
			if err := decodeBody(r, &b); err != nil {
				return nil, err
			}
			switch actionOf(r) {
			case "complete":
				return nil, m.CompleteUpdateSession(ctx, id)
			case "cancel":
				return nil, m.CancelUpdateSession(ctx, id)
			case "fail":
				return nil, m.FailUpdateSession(ctx, id, b.Message)
			case "keep-alive":
				return nil, m.KeepAliveUpdateSession(ctx, id, b.Progress)
			}
			return nil, unknownAction(r)
		})
	})
	api("GET "+p+"library/item/updatesession/file", func(r *http.Request) (any, error) {
		return m.ListSessionFiles(r.Context(), r.URL.Query().Get("update_session_id"))
	})
	api("POST "+p+"library/item/updatesession/file", func(r *http.Request) (any, error) {
		if err := wantAction(r, "probe"); err != nil {
			return nil, err
		}
		var b struct {
			Endpoint sessionmgr.TransferEndpoint `json:"source_endpoint"`
		}
		if err := decodeBody(r, &b); err != nil {
			return nil, err
		}
		return m.ProbeTransferEndpoint(r.Context(), b.Endpoint)
	})
	api("POST "+p+"library/item/updatesession/file/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) {
			ctx := r.Context()
			var b struct {
				Spec sessionmgr.FileAddSpec `json:"file_spec"`
				Name string                 `json:"file_name"`
			}
			if err := decodeBody(r, &b); err != nil {
				return nil, err
			}
			switch actionOf(r) {
			case "add":
				return m.AddFile(ctx, id, b.Spec)
			case "get":
				return m.GetSessionFile(ctx, id, b.Name)
			case "remove":
				return nil, m.RemoveSessionFile(ctx, id, b.Name)
			case "validate":
				return m.ValidateUpdateSession(ctx, id)
			}
			return nil, unknownAction(r)
		})
	})

	api("GET "+p+"library/item/download-session", func(r *http.Request) (any, error) {
		return s.listed(m.ListDownloadSessions(r.Context(), r.URL.Query().Get("library_item_id")))
	})
	api("POST "+p+"library/item/download-session", func(r *http.Request) (any, error) {
		var b struct {
			Spec  sessionmgr.DownloadSessionCreateSpec `json:"create_spec"`
			Token string                               `json:"client_token"`
		}
		if err := decodeBody(r, &b); err != nil {
			return nil, err
		}
		return m.CreateDownloadSession(r.Context(), b.Spec, b.Token)
	})
	api("GET "+p+"library/item/download-session/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) { return m.GetDownloadSession(r.Context(), id) })
	})
	api("DELETE "+p+"library/item/download-session/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) { return nil, m.DeleteDownloadSession(r.Context(), id) })
	})
	api("POST "+p+"library/item/download-session/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) {
			ctx := r.Context()
			var b struct {
				Progress *int64 `json:"progress"` // sic: not client_progress (spec §8.3)
				Message  string `json:"client_error_message"`
			}
			if err := decodeBody(r, &b); err != nil {
				return nil, err
			}
			switch actionOf(r) {
			case "cancel":
				return nil, m.CancelDownloadSession(ctx, id)
			case "fail":
				return nil, m.FailDownloadSession(ctx, id, b.Message)
			case "keep-alive":
				return nil, m.KeepAliveDownloadSession(ctx, id, b.Progress)
			}
			return nil, unknownAction(r)
		})
	})
	api("GET "+p+"library/item/downloadsession/file", func(r *http.Request) (any, error) {
		return m.ListDownloadFiles(r.Context(), r.URL.Query().Get("download_session_id"))
	})
	api("POST "+p+"library/item/downloadsession/file/{id}", func(r *http.Request) (any, error) {
		return withID(r, func(id string) (any, error) {
			ctx := r.Context()
			var b struct {
				Name         string `json:"file_name"`
				EndpointType string `json:"endpoint_type"`
			}
			if err := decodeBody(r, &b); err != nil {
				return nil, err
			}
			switch actionOf(r) {
			case "get":
				return m.GetDownloadFile(ctx, id, b.Name)
			case "prepare":
				return m.PrepareDownloadFile(ctx, id, b.Name, b.EndpointType)
			}
			return nil, unknownAction(r)
		})
	})

	api("GET "+clfsPrefix+"/info", func(r *http.Request) (any, error) {
		return serverInfo{Home: m.Home(), PID: os.Getpid()}, nil
	})
	mux.HandleFunc("POST "+clfsPrefix+"/fsck", s.fsck)
	mux.HandleFunc("PUT "+clfsPrefix+"/data/update-session/{id}/{file}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.refuseChange("PUT "+clfsPrefix+"/data/update-session/{id}/{file}", r); err != nil {
			s.fail(w, r, err)
			return
		}
		s.upload(w, r)
	})
	mux.HandleFunc("GET "+clfsPrefix+"/data/download-session/{id}/{file}", s.download)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, &sessionmgr.Error{Kind: sessionmgr.KindNotFound, Msg: fmt.Sprintf("no operation %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

// refuseChange refuses, on a read-only server, a request to the route
// pattern that would change the catalog. It classifies by the route the
// mux chose, not by the path, so no spelling of a path gets around it;
// a route it does not know as a read is a change.
func (s *ControlServer) refuseChange(pattern string, r *http.Request) error {
	if !s.readOnly {
		return nil
	}
	method, _, _ := strings.Cut(pattern, " ")
	switch {
	case method == http.MethodGet,
		strings.Contains(pattern, "/download-session"), strings.Contains(pattern, "/downloadsession/"),
		method == http.MethodPost && (actionOf(r) == "find" || actionOf(r) == "get") && !strings.Contains(pattern, "/update-session"),
		method == http.MethodPost && actionOf(r) == "probe" && strings.HasSuffix(pattern, "/updatesession/file"):
		return nil
	}
	return &sessionmgr.Error{Kind: sessionmgr.KindUnauthorized, Err: ErrReadOnly,
		Msg: fmt.Sprintf("the mount is read-only (clfs mount --read-only): %s %s would change the catalog", r.Method, r.URL.Path)}
}

// listed is a list as the server answers it: the models on the control
// socket (one round trip, one consistent view for the CLI), their ids on
// the public API, as vSphere's list operations return.
func (s *ControlServer) listed(list any, err error) (any, error) {
	if err != nil || !s.public {
		return list, err
	}
	rv := reflect.ValueOf(list)
	ids := make([]string, rv.Len())
	for i := range ids {
		ids[i] = rv.Index(i).FieldByName("ID").String()
	}
	return ids, nil
}

// serverInfo is what GET /clfs/info answers.
type serverInfo struct {
	Home string `json:"home"`
	PID  int    `json:"pid"`
}

// withID calls fn with the {id} of an /id:{id} path.
func withID(r *http.Request, fn func(id string) (any, error)) (any, error) {
	seg := r.PathValue("id")
	id, ok := strings.CutPrefix(seg, "id:")
	if !ok {
		return nil, &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("path segment %q: want id:{id}", seg)}
	}
	return fn(id)
}

func actionOf(r *http.Request) string { return r.URL.Query().Get(actionParam) }

func wantAction(r *http.Request, want string) error {
	if actionOf(r) != want {
		return unknownAction(r)
	}
	return nil
}

func unknownAction(r *http.Request) error {
	return &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("no action %q on %s %s", actionOf(r), r.Method, r.URL.Path)}
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
		status, v = encodeError(fmt.Errorf("encode response: %w", err))
		b, _ = json.Marshal(v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// fail answers err, and logs it: one line, at Debug for the API's own
// errors (a client asking for something missing), at Error otherwise.
func (s *ControlServer) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, body := encodeError(err)
	level := slog.LevelDebug
	if sessionmgr.KindOf(err) == sessionmgr.KindError {
		level = slog.LevelError
	}
	s.log.Log(r.Context(), level, "control request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeJSON(w, status, body)
}

// ---- data plane and fsck

// upload streams a request body into a PUSH file of an update session and
// finishes it: the answer is the file's info, or why it was refused (size
// or checksum mismatch). A client that sent "Expect: 100-continue" learns
// of a refusal at open before sending any byte.
func (s *ControlServer) upload(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	opts := sessionmgr.UploadOptions{FromCommitted: r.URL.Query().Get(fromCommitted) == "true"}
	sf, err := s.m.OpenUpload(ctx, r.PathValue("id"), r.PathValue("file"), opts)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer sf.Close()
	if n, err := sf.ReadFrom(r.Body); err != nil {
		// The file must not become READY from part of a body: it
		// goes to ERROR, and the client adds it again.
		if !errors.Is(err, sessionmgr.ErrSizeMismatch) && sessionmgr.KindOf(err) == sessionmgr.KindError {
			err = fmt.Errorf("upload of %q broke after %d bytes: %w", sf.Name(), n, err)
		}
		sf.Abort(context.WithoutCancel(ctx), err)
		s.fail(w, r, err)
		return
	}
	info, err := sf.Finish(ctx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, valueBody{info})
}

// download serves a file of a download session, Range requests included;
// the content is read from the pinned version as it is sent.
func (s *ControlServer) download(w http.ResponseWriter, r *http.Request) {
	rd, err := s.m.OpenDownload(r.Context(), r.PathValue("id"), r.PathValue("file"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rd.Close()
	// Set, so that ServeContent does not read the content to sniff it.
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(rd, 0, rd.Size()))
}

// fsckLine is one line of a streamed fsck: progress, the report, or an
// error (an errorBody).
type fsckLine struct {
	Progress *fsckProgress `json:"x_progress,omitempty"`
	Type     string        `json:"type,omitempty"`
	Value    any           `json:"value,omitempty"`
}

type fsckProgress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// fsck runs Fsck. With ?x_progress=true the answer is NDJSON: progress
// lines, at most ten a second, then the report or the error.
func (s *ControlServer) fsck(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get(progressParam) != "true" {
		rep, err := s.m.Fsck(r.Context(), nil)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, valueBody{rep})
		return
	}
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	started := false
	var last time.Time
	progress := func(done, total int64) {
		if now := time.Now(); now.Sub(last) >= 100*time.Millisecond || done >= total {
			last = now
			if !started {
				w.Header().Set("Content-Type", ndjson)
				w.WriteHeader(http.StatusOK)
				started = true
			}
			enc.Encode(fsckLine{Progress: &fsckProgress{Done: done, Total: total}})
			rc.Flush()
		}
	}
	rep, err := s.m.Fsck(r.Context(), progress)
	switch {
	case !started && err != nil:
		s.fail(w, r, err)
	case !started:
		writeJSON(w, http.StatusOK, valueBody{rep})
	case err != nil:
		_, body := encodeError(err)
		s.log.Error("control request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		enc.Encode(fsckLine{Type: body.Type, Value: body.Value})
	default:
		enc.Encode(fsckLine{Value: rep})
	}
}
