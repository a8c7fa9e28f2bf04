package fs

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"clfs/sessionmgr"
)

// FS is a mountable view of one session manager.
type FS struct {
	m       Manager
	log     *slog.Logger
	started time.Time
	root    *rootNode
	// counters count the requests of the mounts served through
	// RawFileSystem.
	counters Counters

	// Changes waiting to be told to the kernel: a queue without bound,
	// because with long cache timeouts a dropped change would leave the
	// kernel wrong for that long.
	changesMu       sync.Mutex
	pending         []sessionmgr.Change // GUARDED_BY(changesMu)
	pendingAttrs    []*fusefs.Inode     // GUARDED_BY(changesMu)
	closed          bool                // GUARDED_BY(changesMu)
	wake            chan struct{}       // a change is pending, or closed
	invalidatorDone chan struct{}
	closeOnce       sync.Once

	// passthrough: the kernel takes blobs as backing files (file.go);
	// set by the mount once the kernel has answered INIT.
	passthrough atomic.Bool
	releases    releaseQueue // flushFilter.Release
	// attrTimeout is how long the kernel keeps attributes (the mount's
	// AttrTimeout), for the replies go-fuse leaves at zero.
	attrTimeout time.Duration
}

// Options configures New. There is no read-only option: a session
// manager opened read-only refuses every change (sessionmgr.ErrReadOnly),
// which the filesystem answers with EROFS.
type Options struct {
	Logger *slog.Logger
}

// New returns the filesystem over m.
func New(m Manager, opts Options) *FS {
	fsys := &FS{m: m, log: opts.Logger, started: time.Now()}
	if fsys.log == nil {
		fsys.log = slog.Default()
	}
	fsys.root = &rootNode{fsys: fsys}
	fsys.startInvalidator()
	return fsys
}

// Counters returns the FUSE requests served so far, by opcode (see
// Counters).
func (fsys *FS) Counters() map[string]uint64 { return fsys.counters.Snapshot() }

// SetPassthrough says whether the kernel reads committed blobs itself
// (FUSE passthrough: Linux 6.9 or later, a root daemon), which only the
// kernel's answer to INIT tells. Off, every read comes to the daemon.
func (fsys *FS) SetPassthrough(on bool) { fsys.passthrough.Store(on) }

// Passthrough says whether committed blobs are read by the kernel itself.
func (fsys *FS) Passthrough() bool { return fsys.passthrough.Load() }

// passthroughRefused turns passthrough off for good: go-fuse stops
// offering backing files after the kernel refused one.
func (fsys *FS) passthroughRefused() {
	if fsys.passthrough.Swap(false) {
		fsys.log.Warn("the kernel refused a passthrough file: reads go through the daemon from now on")
	}
}

// RequestSize is the largest READ and WRITE the mount asks the kernel for
// (its MaxWrite): files report it as st_blksize, so that readers that size
// their buffer from it (cmp, many others) make one round trip per request,
// not one per 4 KiB page.
const RequestSize = 1 << 20

// Root is the node to mount.
func (fsys *FS) Root() fusefs.InodeEmbedder { return fsys.root }

// Inode numbers: the catalog ID with the node's kind in the top byte.
const (
	rootIno    = 1
	libraryTag = uint64(1) << 56
	itemTag    = uint64(2) << 56
	fileTag    = uint64(3) << 56
)

func libraryIno(id uint64) uint64 { return libraryTag | id }
func itemIno(id uint64) uint64    { return itemTag | id }
func fileIno(id uint64) uint64    { return fileTag | id }

// caller is who asks, for the owner of what it creates.
func caller(ctx context.Context) (uid, gid uint32) {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Uid, c.Gid
	}
	return 0, 0
}

// callerOf is who makes a change. FUSE does not pass capabilities, so
// root stands for CAP_FSETID, as fusermount's own checks do.
func callerOf(ctx context.Context) sessionmgr.Caller {
	uid, gid := caller(ctx)
	return sessionmgr.Caller{UID: uid, GID: gid, Privileged: uid == 0}
}

func fillDirAttr(out *fuse.Attr, ino uint64, p sessionmgr.Posix) {
	out.Ino = ino
	out.Mode = syscall.S_IFDIR | (p.Mode & 0o7777)
	out.Nlink = 2
	out.Uid, out.Gid = p.UID, p.GID
	setTimes(out, p)
}

func fillFileAttr(out *fuse.Attr, e *sessionmgr.FileEntry) {
	out.Ino = fileIno(e.Posix.Ino)
	out.Mode = syscall.S_IFREG | (e.Posix.Mode & 0o7777)
	out.Nlink = 1
	if e.Unlinked {
		out.Nlink = 0
	}
	out.Size = uint64(e.Size)
	// go-fuse fills st_blocks only when st_blksize is unset: counted
	// here as it does, in 512-byte units of whole 4 KiB pages.
	out.Blksize = RequestSize
	out.Blocks = (out.Size + 4095) / 4096 * 8
	out.Uid, out.Gid = e.Posix.UID, e.Posix.GID
	setTimes(out, e.Posix)
}

// setTimes fills the times to the nanosecond; atime is what utimensat
// set, else mtime (reads do not move it: the mount is noatime).
func setTimes(out *fuse.Attr, p sessionmgr.Posix) {
	a, m, c := p.Atime, p.Mtime, p.Ctime
	if a.IsZero() {
		a = m
	}
	out.SetTimes(&a, &m, &c)
}

// posixChange turns a SETATTR into a sessionmgr change.
func posixChange(in *fuse.SetAttrIn) (sessionmgr.PosixChange, bool) {
	var ch sessionmgr.PosixChange
	any := false
	if mode, ok := in.GetMode(); ok {
		m := mode & 0o7777
		ch.Mode, any = &m, true
	}
	if uid, ok := in.GetUID(); ok {
		ch.UID, any = &uid, true
	}
	if gid, ok := in.GetGID(); ok {
		ch.GID, any = &gid, true
	}
	if mtime, ok := in.GetMTime(); ok {
		ch.Mtime, any = &mtime, true
	}
	if atime, ok := in.GetATime(); ok {
		ch.Atime, any = &atime, true
	}
	return ch, any
}

// Statfs reports the default storage backing's space.
func (fsys *FS) statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	st, err := fsys.m.StorageStats(ctx)
	if err != nil {
		return fsys.toErrno("statfs", "/", err)
	}
	out.Bsize = uint32(st.BlockSize)
	out.Frsize = uint32(st.BlockSize)
	out.Blocks, out.Bfree, out.Bavail = st.Blocks, st.BlocksFree, st.BlocksUser
	out.Files, out.Ffree = st.Files, st.FilesFree
	out.NameLen = sessionmgr.MaxNameBytes
	return 0
}

// checkNameLen refuses a name no entry can have, with ENAMETOOLONG as on
// any Linux filesystem: every call on a path (stat, open, unlink, chmod,
// rename) looks its last name up first.
func (fsys *FS) checkNameLen(path, name string) syscall.Errno {
	if len(name) <= sessionmgr.MaxNameBytes {
		return 0
	}
	return fsys.reject("lookup", path, syscall.ENAMETOOLONG, "a name is at most 255 bytes")
}

// dots are the "." and ".." entries a directory listing starts with.
func dots(n *fusefs.Inode) []fuse.DirEntry {
	parent := n
	if _, p := n.Parent(); p != nil {
		parent = p
	}
	return []fuse.DirEntry{
		{Name: ".", Ino: n.StableAttr().Ino, Mode: syscall.S_IFDIR},
		{Name: "..", Ino: parent.StableAttr().Ino, Mode: syscall.S_IFDIR},
	}
}

// dirXattrs answers setxattr and removexattr on libraries, items and the
// root: clfs stores no extended attributes there, so the answer is
// ENOTSUP, which cp -a, tar and rsync tolerate. go-fuse's default for a
// node without these methods is ENODATA, and cp -a then fails on every
// directory ("preserving permissions for ...: No data available").
type dirXattrs struct{}

var (
	_ = (fusefs.NodeSetxattrer)((*dirXattrs)(nil))
	_ = (fusefs.NodeRemovexattrer)((*dirXattrs)(nil))
)

func (dirXattrs) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.ENOTSUP
}

func (dirXattrs) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return syscall.ENOTSUP
}
