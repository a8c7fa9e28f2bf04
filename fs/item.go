package fs

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"clfs/sessionmgr"
)

// itemNode is /LIB/ITEM: its files are regular files in it. Items are
// flat: no directories inside.
type itemNode struct {
	fusefs.Inode
	dirXattrs
	fsys      *FS
	id        string // API id of the item
	libraryID string

	// gens are the current generations of the item's file nodes, by
	// catalog ID: a node whose kernel inode is bound to one blob
	// (passthrough) is retired when its file needs another, and the next
	// LOOKUP of the name makes a node of the next generation (admit).
	gensMu sync.Mutex
	gens   map[uint64]*fileGen // GUARDED_BY(gensMu); absent is generation 0
}

// fileGen is a file's current node generation.
type fileGen struct {
	gen uint64
	// elder is the node the generation retired. Its handles opened
	// before any of this generation's, so while one is open the file's
	// view is still theirs (fileNode.viewHandleLocked).
	elder *fileNode
	// daemonDue: a writer (or another handle that cannot pass through)
	// retired the elder and retries its open on this generation, and the
	// kernel retries an ESTALE open once only: until it arrives, readers
	// keep off passthrough, which would retire this generation too.
	daemonDue time.Time
}

// daemonRetry is how long a generation waits for the handle that retired
// the previous one before readers may bind it to a blob.
const daemonRetry = time.Second

// gen is the current generation of the file nodes of catalog ID ino, and
// the node it retired, if any.
func (n *itemNode) gen(ino uint64) (uint64, *fileNode) {
	n.gensMu.Lock()
	defer n.gensMu.Unlock()
	if g := n.gens[ino]; g != nil {
		return g.gen, g.elder
	}
	return 0, nil
}

// retire moves the file past node f's generation, if it is still the
// current one; forDaemon says a handle that cannot pass through (a
// writer's) is about to retry its open.
func (n *itemNode) retire(f *fileNode, forDaemon bool) {
	n.gensMu.Lock()
	defer n.gensMu.Unlock()
	if g := n.gens[f.ino]; g != nil && g.gen != f.gen || g == nil && f.gen != 0 {
		return
	}
	if n.gens == nil {
		n.gens = map[uint64]*fileGen{}
	}
	next := &fileGen{gen: f.gen + 1, elder: f}
	if forDaemon {
		next.daemonDue = time.Now().Add(daemonRetry)
	}
	n.gens[f.ino] = next
}

// awaitsDaemonHandle says whether generation gen of ino waits for the
// retried open of the handle that retired its elder; admitted says such
// a handle has arrived.
func (n *itemNode) awaitsDaemonHandle(ino, gen uint64, admitted bool) bool {
	n.gensMu.Lock()
	defer n.gensMu.Unlock()
	g := n.gens[ino]
	if g == nil || g.gen != gen || g.daemonDue.IsZero() {
		return false
	}
	if admitted || time.Now().After(g.daemonDue) {
		g.daemonDue = time.Time{}
		return false
	}
	return true
}

var (
	_ = (fusefs.NodeLookuper)((*itemNode)(nil))
	_ = (fusefs.NodeOpendirHandler)((*itemNode)(nil))
	_ = (fusefs.NodeGetattrer)((*itemNode)(nil))
	_ = (fusefs.NodeSetattrer)((*itemNode)(nil))
	_ = (fusefs.NodeMkdirer)((*itemNode)(nil))
	_ = (fusefs.NodeRmdirer)((*itemNode)(nil))
	_ = (fusefs.NodeRenamer)((*itemNode)(nil))
	_ = (fusefs.NodeCreater)((*itemNode)(nil))
	_ = (fusefs.NodeUnlinker)((*itemNode)(nil))
	_ = (fusefs.NodeSymlinker)((*itemNode)(nil))
	_ = (fusefs.NodeMknoder)((*itemNode)(nil))
	_ = (fusefs.NodeLinker)((*itemNode)(nil))
	_ = (fusefs.NodeStatfser)((*itemNode)(nil))
	_ = (fusefs.NodeFsyncer)((*itemNode)(nil))
)

// Fsync is fsyncdir(2): the namespace changes made so far become durable.
func (n *itemNode) Fsync(ctx context.Context, f fusefs.FileHandle, flags uint32) syscall.Errno {
	return n.fsys.toErrno("fsyncdir", n.path(""), n.fsys.m.Sync(ctx))
}

func (n *itemNode) path(name string) string {
	p := "/" + n.Path(n.Root())
	if name != "" {
		p += "/" + name
	}
	return p
}

func (n *itemNode) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	it, err := n.fsys.m.ItemAttributes(ctx, n.id)
	if err != nil {
		return n.fsys.toErrno("getattr", n.path(""), err)
	}
	fillDirAttr(&out.Attr, itemIno(it.Posix.Ino), it.Posix)
	return 0
}

func (n *itemNode) Setattr(ctx context.Context, f fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if _, ok := in.GetSize(); ok {
		return n.fsys.reject("setattr", n.path(""), syscall.EISDIR, "an item is a directory")
	}
	if ch, ok := posixChange(in); ok {
		if err := n.fsys.m.SetItemPosix(ctx, n.id, ch); err != nil {
			return n.fsys.toErrno("setattr", n.path(""), err)
		}
	}
	return n.Getattr(ctx, f, out)
}

func (n *itemNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.fsys.statfs(ctx, out)
}

func (n *itemNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if errno := n.fsys.checkNameLen(n.path(name), name); errno != 0 {
		return nil, errno
	}
	e, err := n.fsys.m.ItemEntry(ctx, n.id, name)
	if err != nil {
		return nil, n.fsys.toErrno("lookup", n.path(name), err)
	}
	return n.fileInode(ctx, e, out), 0
}

func (n *itemNode) fileInode(ctx context.Context, e *sessionmgr.FileEntry, out *fuse.EntryOut) *fusefs.Inode {
	gen, elder := n.gen(e.Posix.Ino)
	if c := n.GetChild(e.Name); c != nil {
		if f, ok := c.Operations().(*fileNode); ok && f.gen == gen {
			e = f.entryFor(ctx, e)
		}
	}
	fillFileAttr(&out.Attr, e)
	child := n.NewInode(ctx, &fileNode{fsys: n.fsys, item: n, ino: e.Posix.Ino, gen: gen, elder: elder, lastName: e.Name}, fusefs.StableAttr{Mode: syscall.S_IFREG, Ino: fileIno(e.Posix.Ino), Gen: gen})
	if f, ok := child.Operations().(*fileNode); ok {
		f.remember(e)
	}
	return child
}

func (n *itemNode) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	h := newListing(&n.Inode, n.Lookup, func(ctx context.Context, h *listing) syscall.Errno {
		files, err := n.fsys.m.ItemEntries(ctx, n.id)
		if err != nil {
			return n.fsys.toErrno("readdir", n.path(""), err)
		}
		for i := range files {
			f := &files[i]
			h.add(fuse.DirEntry{Name: f.Name, Ino: fileIno(f.Posix.Ino), Mode: syscall.S_IFREG},
				func(ctx context.Context, out *fuse.EntryOut) *fusefs.Inode { return n.fileInode(ctx, f, out) })
		}
		return 0
	})
	return h, listingFlags, 0
}

// Create makes a new name: visible at once, committed at close.
func (n *itemNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	uid, gid := caller(ctx)
	d, err := n.fsys.m.CreateFile(ctx, n.id, name, sessionmgr.Posix{Mode: mode & 0o7777, UID: uid, GID: gid, Mtime: time.Now()})
	existing := false
	if errors.Is(err, sessionmgr.ErrAlreadyExists) && flags&syscall.O_EXCL == 0 {
		// The kernel took the name for absent, but another node (or
		// the API) created it meanwhile: without O_EXCL, open(2) opens
		// what is there.
		existing = true
		d, err = n.fsys.m.OpenDraft(ctx, n.id, name)
	}
	if err != nil {
		return nil, nil, 0, n.fsys.toErrno("create", n.path(name), err)
	}
	e, err := d.Entry(ctx)
	if err != nil {
		d.Close(ctx)
		return nil, nil, 0, n.fsys.toErrno("create", n.path(name), err)
	}
	// DIRECT_IO as in fileNode.Open: no uncommitted pages in the cache.
	child := n.fileInode(ctx, e, out)
	f, ok := child.Operations().(*fileNode)
	if !ok {
		d.Close(ctx)
		return nil, nil, 0, n.fsys.reject("create", n.path(name), syscall.EIO, "the new name's inode is not a file")
	}
	h := f.newWriteHandle(d)
	if h == nil {
		d.Close(ctx)
		return nil, nil, 0, syscall.ESTALE
	}
	if existing && flags&syscall.O_TRUNC != 0 {
		if err := d.TruncateAtOpen(ctx, callerOf(ctx)); err != nil {
			h.release(ctx)
			return nil, nil, 0, n.fsys.toErrno("create", n.path(name), err)
		}
	}
	return child, h, fuse.FOPEN_DIRECT_IO, 0
}

func (n *itemNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if err := n.fsys.m.RemoveFile(ctx, n.id, name); err != nil {
		return n.fsys.toErrno("unlink", n.path(name), err)
	}
	n.forgetName(name)
	return 0
}

// forgetName tells the node a name had, if the kernel knows it, that the
// name is gone (unlink, or a rename over it).
func (n *itemNode) forgetName(name string) {
	if c := n.GetChild(name); c != nil {
		if f, ok := c.Operations().(*fileNode); ok {
			f.unlinked(time.Now())
		}
	}
}

// Rename within the item is an atomic, metadata-only replace; anywhere
// else is EXDEV, so mv and rsync fall back to copy and unlink.
func (n *itemNode) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if flags&(renameExchange|renameWhiteout) != 0 {
		return n.fsys.reject("rename", n.path(name), syscall.EINVAL, "RENAME_EXCHANGE and RENAME_WHITEOUT are not supported")
	}
	if p, ok := newParent.(*itemNode); !ok || p.id != n.id {
		return n.fsys.reject("rename", n.path(name), syscall.EXDEV, "a file can only be renamed within its item")
	}
	victim, moved := n.GetChild(newName), n.GetChild(name)
	err := n.fsys.m.RenameFile(ctx, n.id, name, newName, flags&renameNoReplace != 0)
	if err == nil && victim != nil && victim != moved {
		if f, ok := victim.Operations().(*fileNode); ok {
			f.unlinked(time.Now())
		}
	}
	if err == nil && moved != nil {
		// Its last name must be the new one before go-fuse moves it: a
		// late open of it, once renamed over in turn, looks that up.
		if f, ok := moved.Operations().(*fileNode); ok {
			f.renamed(newName)
		}
	}
	return n.fsys.toErrno("rename", n.path(name), err)
}

func (n *itemNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, n.fsys.reject("mkdir", n.path(name), syscall.EPERM, "items are flat: no directories inside an item")
}

func (n *itemNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if _, err := n.fsys.m.ItemEntry(ctx, n.id, name); err == nil {
		return n.fsys.reject("rmdir", n.path(name), syscall.ENOTDIR, "a file is not a directory")
	}
	return syscall.ENOENT
}

func (n *itemNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, n.fsys.reject("symlink", n.path(name), syscall.EPERM, "symlinks are not supported")
}

func (n *itemNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, n.fsys.reject("mknod", n.path(name), syscall.EPERM, "device nodes and FIFOs are not supported")
}

func (n *itemNode) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, n.fsys.reject("link", n.path(name), syscall.EPERM, "hard links are not supported")
}
