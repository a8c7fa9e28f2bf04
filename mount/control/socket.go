// Package control is a daemon's control socket: the unix socket in the
// home (mode 0600, peers checked with SO_PEERCRED) on which a mount or
// `clfs serve` serves its session manager to the clfs commands, and the
// client those commands use.
//
// A running daemon holds the catalog's lock, so no other process can open
// the home; the commands find the daemon by its socket and run the API's
// operations through it, with the same errors as in-process calls.
package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"clfs/mount/api"
	"clfs/sessionmgr"
)

// SocketName is the control socket's name in the home directory.
const SocketName = "clfs.sock"

// SocketPath is the control socket of a home.
func SocketPath(home string) string { return filepath.Join(home, SocketName) }

// ErrMountRunning is returned by Serve when another live daemon answers
// on the socket.
var ErrMountRunning = errors.New("another clfs mount serves this home")

// Server is a session manager served on a control socket.
type Server struct {
	*api.Server
	path   string
	socket os.FileInfo // the file we created, so that Close removes only it
}

// Serve serves m on a unix socket at socketPath, with mode 0600, to root
// and the user running it, with the control socket's rules (opts.Public
// is ignored). A stale socket (nothing answers) is replaced; a live one
// is refused with ErrMountRunning.
func Serve(m *sessionmgr.Manager, socketPath string, opts api.Options) (*Server, error) {
	owner := uint32(os.Geteuid())
	return serve(m, socketPath, opts, func(uid uint32) bool { return peerAllowed(uid, owner) })
}

// peerAllowed is the access rule: root and the socket's owner.
func peerAllowed(uid, owner uint32) bool { return uid == 0 || uid == owner }

func serve(m *sessionmgr.Manager, path string, opts api.Options, allow func(uid uint32) bool) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	opts.Logger, opts.Public = log, nil
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
	h := api.NewHandler(m, opts)
	return &Server{
		Server: api.Serve(&peerCheckListener{UnixListener: ln, allow: allow, log: log}, h, log),
		path:   path,
		socket: st,
	}, nil
}

// Close stops serving (see api.Server.Close) and removes the socket.
func (s *Server) Close() error {
	err := s.Server.Close()
	if st, lerr := os.Lstat(s.path); lerr == nil && os.SameFile(st, s.socket) {
		if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove control socket: %w", rerr))
		}
	}
	return err
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

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

// maxSocketPath is what sun_path holds, without the NUL.
const maxSocketPath = 107

// withSocketName calls fn with a name of the socket at path that fits in
// sun_path: path itself, or, for a deep home, /proc/self/fd/N/clfs.sock
// over an O_PATH descriptor of its directory, open only during fn.
func withSocketName(path string, fn func(name string) error) error {
	if len(path) <= maxSocketPath {
		return fn(path)
	}
	dir := filepath.Dir(path)
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	return fn(fmt.Sprintf("/proc/self/fd/%d/%s", fd, filepath.Base(path)))
}
