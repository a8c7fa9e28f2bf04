// Package mount is the clfs daemon: it opens the session manager of a
// home, mounts its filesystem (Start) or serves without a mount (Serve),
// serves the manager on the home's control socket (package control) and,
// when asked, on the HTTPS API (package api), and stops cleanly.
package mount

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"clfs/fs"
	"clfs/mount/api"
	"clfs/mount/control"
	"clfs/sessionmgr"
)

// Options configures a mount.
type Options struct {
	Mountpoint string
	Home       string
	// Meta is the catalog URL (sessionmgr.Options.Meta); empty: the
	// home's.
	Meta       string
	ReadOnly   bool
	AllowOther bool
	Debug      bool // FUSE trace on stderr
	// NoXattr answers every xattr call with ENOSYS, which the kernel
	// remembers: no user.clfs.* attributes, and no security.capability
	// probe before each write.
	NoXattr        bool
	SessionTimeout time.Duration
	// VerifyReads keeps every read on the daemon, checked against the
	// stored SHA-256 (sessionmgr.Options.VerifyReads); without it,
	// committed blobs are read through FUSE passthrough where the kernel
	// offers it, and fsck is where they are checked.
	VerifyReads bool
	Logger      *slog.Logger
	// Clock and ReapInterval are passed to the session manager (tests
	// expire sessions with a fake clock).
	Clock        sessionmgr.Clock
	ReapInterval time.Duration
	// API, when set, is an HTTPS listener of the vSphere API bound by
	// api.Listen, served over the same session manager.
	API *api.Listener
	// NodeLease and ContentGrace are the session manager's: how long the
	// node may go silent before its sessions fail, and how long freed
	// content stays on a shared catalog.
	NodeLease    time.Duration
	ContentGrace time.Duration
}

// Mount is a running mount.
type Mount struct {
	Manager *sessionmgr.Manager
	fsys    *fs.FS
	server  *fuse.Server
	control *control.Server
	api     *api.Server // nil without Options.API
	opts    Options
}

// CheckMountpoint refuses a mountpoint that is missing, not a directory,
// not empty, or a stale mount, with a message that says what to do.
func CheckMountpoint(dir string) error {
	stale := fmt.Errorf("%s is a stale mount (its daemon died): run 'fusermount3 -u %s' or 'umount -l %s' first", dir, dir, dir)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return stale
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("mountpoint %s does not exist: create it with 'mkdir -p %s'", dir, dir)
	case err != nil:
		return fmt.Errorf("mountpoint %s: %w", dir, err)
	case !st.IsDir():
		return fmt.Errorf("mountpoint %s is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, syscall.ENOTCONN) {
		return stale
	}
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("mountpoint %s is not empty (or something is mounted there): use an empty directory", dir)
	}
	return nil
}

// Start opens the home's session manager, mounts it, and serves it on
// the home's control socket.
func Start(opts Options) (*Mount, error) {
	mt, err := start(opts)
	if err != nil && opts.API != nil {
		opts.API.Close() // a second Close of a served listener is harmless
	}
	return mt, err
}

func start(opts Options) (*Mount, error) {
	if err := CheckMountpoint(opts.Mountpoint); err != nil {
		return nil, err
	}
	m, log, err := openHome(opts)
	if err != nil {
		return nil, err
	}
	fsys := fs.New(m, fs.Options{Logger: log})
	// The daemon is the only writer of its catalog (Badger's lock), and
	// every change, from the mount or the control socket, is pushed to
	// the kernel as an invalidation (fs/invalidate.go): the kernel may
	// keep entries and attributes as long as it likes, and names that do
	// not exist too: a name created through the API is pushed as an entry
	// invalidation (sessionmgr.Change.Appeared).
	timeout := time.Hour
	negative := timeout
	mo := fuse.MountOptions{
		FsName:        m.Home(),
		Name:          "clfs",
		DirectMount:   os.Geteuid() == 0,
		AllowOther:    opts.AllowOther,
		Debug:         opts.Debug,
		MaxWrite:      fs.RequestSize,
		DisableXAttrs: opts.NoXattr,
		// O_TRUNC arrives with OPEN, so truncation belongs to the handle.
		// Write handles are DIRECT_IO; shared writable mmap still works.
		ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC | fuse.CAP_DIRECT_IO_ALLOW_MMAP,
		// Reads are answered from our own buffers, never from a file
		// descriptor, so splicing would only copy them into a pipe
		// first; and a 1 MiB read plus its header does not fit the
		// default largest pipe, so go-fuse logged a failed try on each.
		DisableSplice: true,
	}
	// go-fuse's own messages go through the daemon's structured log.
	fuseLevel := slog.LevelWarn
	if opts.Debug {
		fuseLevel = slog.LevelInfo // the request trace
	}
	mo.Logger = slog.NewLogLogger(log.Handler(), fuseLevel)
	// Reads do not move atime (it is stored as utimensat sets it), and
	// /proc/mounts says so.
	if mo.DirectMount {
		mo.DirectMountFlags = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOATIME
	} else {
		mo.Options = append(mo.Options, "noatime")
	}
	if opts.ReadOnly {
		mo.Options = append(mo.Options, "ro")
	}
	if opts.AllowOther {
		// Other users get in, so the kernel must check the modes and
		// owners clfs stores before it forwards their calls: without
		// default_permissions any user could read a 0600 file, write
		// or remove other users' files, and chmod or chown them.
		mo.Options = append(mo.Options, "default_permissions")
	}
	// The control socket answers before the mount appears: whoever
	// waits for the mountpoint (a test, systemd, a script) may run a
	// clfs command at once, and without the socket it would try to open
	// the catalog the daemon holds.
	ctl, err := control.Serve(m, control.SocketPath(m.Home()), api.Options{Logger: log, Counters: fsys.Counters})
	if err != nil {
		fsys.Close()
		m.Close()
		return nil, err
	}
	var https *api.Server
	if opts.API != nil {
		https = api.ServeHTTPS(m, opts.API, api.Options{Logger: log})
	}
	server, err := serve(opts.Mountpoint, fsys, &fusefs.Options{
		MountOptions:    mo,
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &negative,
		// Mode 0 is a mode: without this go-fuse shows it as 0644.
		NullPermissions: true,
	})
	if err != nil {
		if https != nil {
			https.Close()
		}
		ctl.Close()
		fsys.Close()
		m.Close()
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("mount %s: %w (as a regular user clfs mounts through fusermount3, which needs the fuse3 package and read-write access to /dev/fuse)", opts.Mountpoint, err)
		}
		return nil, fmt.Errorf("mount %s: %w", opts.Mountpoint, err)
	}
	passthrough := !opts.VerifyReads && os.Geteuid() == 0 &&
		server.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0
	fsys.SetPassthrough(passthrough)
	switch {
	case opts.VerifyReads:
		log.Info("reads go through the daemon, checked against their SHA-256 (verify reads)")
	case passthrough:
		log.Info("reads of stored content use FUSE passthrough")
	default:
		log.Info("reads go through the daemon: the kernel offers no FUSE passthrough to this process (it needs Linux 6.9 or later and root)")
	}
	return &Mount{Manager: m, fsys: fsys, server: server, control: ctl, api: https, opts: opts}, nil
}

// openHome opens the home's session manager, with the API listener's
// transfer URIs when there is one, unless a running mount or server
// answers on the home's control socket. It returns the logger to use.
func openHome(opts Options) (*sessionmgr.Manager, *slog.Logger, error) {
	if c, err := control.Dial(opts.Home); err == nil {
		c.Close()
		return nil, nil, fmt.Errorf("%w: %s (control socket %s)", control.ErrMountRunning, opts.Home, c.Socket())
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	mo := sessionmgr.Options{
		Home: opts.Home, Meta: opts.Meta, SessionTimeout: opts.SessionTimeout, Logger: log, Clock: opts.Clock,
		ReapInterval: opts.ReapInterval, ReadOnly: opts.ReadOnly, VerifyReads: opts.VerifyReads,
		NodeLease: opts.NodeLease, ContentGrace: opts.ContentGrace,
	}
	// What `clfs status` shows as the node's address.
	var addrs []string
	if opts.Mountpoint != "" {
		mp, err := filepath.Abs(opts.Mountpoint)
		if err != nil {
			mp = opts.Mountpoint
		}
		addrs = append(addrs, mp)
	}
	if opts.API != nil {
		mo.Endpoints = opts.API.Endpoints()
		addrs = append(addrs, opts.API.URL())
	}
	mo.NodeAddr = strings.Join(addrs, " ")
	m, err := sessionmgr.Open(mo)
	return m, log, err
}

// serve mounts fsys and serves it, as fusefs.Mount does, but through the
// filesystem's own raw handler (see fs.FS.RawFileSystem).
func serve(dir string, fsys *fs.FS, opts *fusefs.Options) (*fuse.Server, error) {
	server, err := fuse.NewServer(fsys.RawFileSystem(opts), dir, &opts.MountOptions)
	if err != nil {
		return nil, err
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		return nil, err
	}
	return server, nil
}

// Wait blocks until the filesystem is unmounted (by Unmount, umount or
// fusermount3 -u), then closes the control socket and the session
// manager.
func (mt *Mount) Wait() error {
	mt.server.Wait()
	var aerr error
	if mt.api != nil {
		aerr = mt.api.Close()
	}
	cerr := errors.Join(aerr, mt.control.Close())
	mt.fsys.Close()
	return errors.Join(mt.Manager.Close(), cerr)
}

// Unmount unmounts; Wait then returns.
func (mt *Mount) Unmount() error {
	var err error
	for i := 0; i < 20; i++ {
		if err = mt.server.Unmount(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond) // busy: a process still has a file open
	}
	return fmt.Errorf("unmount %s: %w", mt.opts.Mountpoint, err)
}
