package fs

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"clfs/sessionmgr"
)

// fileNode is /LIB/ITEM/FILE. Its pending state (a write in progress, a
// new name not committed yet) is a sessionmgr.Draft, found by name.
//
// The kernel names a node by its inode, which may outlive its name: an
// open(2) that looked a name up just before a rename over it (rsync,
// editors, os.replace) arrives for the replaced inode. Such a node keeps
// the name it was last seen under, and an open of it opens what that name
// holds now: a complete, committed version either way.
type fileNode struct {
	fusefs.Inode
	fsys *FS
	item *itemNode
	ino  uint64 // the file's catalog ID
	gen  uint64 // the node's generation: see itemNode.gens and admit

	// elder is the node this one's generation retired, while it may
	// still have handles open (elderOpenLocked).
	elder *fileNode // GUARDED_BY(mu)

	mu       sync.Mutex
	lastName string // GUARDED_BY(mu)
	// last is what the node last answered: once its name is gone, what
	// fstat(2) of a reader still open on it shows.
	last *sessionmgr.FileEntry // GUARDED_BY(mu)
	// opened are the node's open handles, oldest first: the kernel asks for
	// attributes without saying for which descriptor, and go-fuse answers
	// GETATTR with that handle, so LOOKUP and READDIRPLUS answer with it
	// too, or the kernel's one size per inode would flip between the
	// writer's and the committed one.
	opened []fusefs.FileHandle // GUARDED_BY(mu); in the order they opened
	// blob is the SHA-256 of the blob the node's passthrough handles
	// read: the kernel binds one backing file to an inode (go-fuse one
	// backing ID to a node) while they are open, so a node reads one
	// blob for good.
	blob string // GUARDED_BY(mu)
}

// openMode is how a handle opens a file node.
type openMode int

const (
	openDaemon      openMode = iota // reads and writes come to the daemon (DIRECT_IO)
	openPassthrough                 // the kernel reads the blob itself
	openStale                       // ESTALE: the kernel looks the name up again
)

// admit decides how a new handle opens the node and, unless it is
// openStale, adds the handle mk makes for that mode to its open handles.
// blob is the SHA-256 of the blob the handle could pass through, "" for
// a handle that cannot (a writer, inline content, a new name, a mount
// with --verify-reads).
//
// The kernel holds an inode either in passthrough, bound to one backing
// file, or not: while passthrough handles are open, any other open of
// the inode fails with EIO, and a cached (mmap'd) one keeps passthrough
// out. So passthrough is for a node whose open handles are all
// passthrough handles of the same blob, and a node with nothing open
// (the kernel let go of its blob with its last handle). A handle that
// needs the daemon or another blob while passthrough handles are open
// retires the node: ESTALE makes the kernel look the name up again
// (open(2) retries once), which answers with a node of the next
// generation, a new inode, while the old one's readers finish their
// version.
func (n *fileNode) admit(blob string, mk func(openMode) fusefs.FileHandle) (fusefs.FileHandle, openMode) {
	n.mu.Lock()
	defer n.mu.Unlock()
	passing := 0
	for _, o := range n.opened {
		if _, ok := o.(*passthroughHandle); ok {
			passing++
		}
	}
	mode := openDaemon
	switch {
	case passing > 0 && blob == n.blob:
		mode = openPassthrough
	case passing > 0:
		mode = openStale
	case len(n.opened) > 0 || blob == "":
		// The kernel may hold the inode cached (a mapping).
	case n.item.awaitsDaemonHandle(n.ino, n.gen, false):
	default:
		// Nothing open: the kernel has let go of any blob it had.
		mode = openPassthrough
	}
	if mode == openStale {
		n.item.retire(n, blob == "")
		return nil, mode
	}
	if blob == "" {
		n.item.awaitsDaemonHandle(n.ino, n.gen, true)
	}
	if mode == openPassthrough {
		n.blob = blob
	}
	h := mk(mode)
	n.opened = append(n.opened, h)
	return h, mode
}

// retired: the name now leads to a node of a later generation. A retired
// node still opens, by the rules of admit, for a kernel that reaches it
// through a dentry it has not looked up again: the kernel retries an
// ESTALE open once only, and a file written and read in a loop may
// retire the node it looks up again before its open arrives.
func (n *fileNode) retired() bool {
	gen, _ := n.item.gen(n.ino)
	return gen != n.gen
}

// elderOpenLocked says whether a handle is still open on a node this
// one's generation retired, directly or down the line: those opened
// before any of this node's. A retired node the kernel has forgotten
// never opens again, so the line is cut where such nodes have no handle
// open.
func (n *fileNode) elderOpenLocked() bool {
	for n.elder != nil {
		open, next := n.elder.elderState()
		if open {
			return true
		}
		if !n.elder.Forgotten() {
			break
		}
		n.elder = next
	}
	if n.elder == nil {
		return false
	}
	for e := n.elder.elderNext(); e != nil; e = e.elderNext() {
		if open, _ := e.elderState(); open {
			return true
		}
	}
	return false
}

// elderState: whether the node has a handle open, and the elder it
// retired.
func (n *fileNode) elderState() (open bool, next *fileNode) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.opened) > 0, n.elder
}

func (n *fileNode) elderNext() *fileNode {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.elder
}

// dropHandleAfterRelease drops h from the node's open handles once the
// RELEASE that closes it is done (FS.afterRelease): go-fuse counts the
// node's passthrough handles in that RELEASE only after h.Release, and a
// passthrough open admitted in between would lose its blob.
func (n *fileNode) dropHandleAfterRelease(ctx context.Context, h fusefs.FileHandle) {
	n.fsys.afterRelease(ctx, func() { n.dropHandle(h) })
}

func (n *fileNode) dropHandle(h fusefs.FileHandle) {
	n.mu.Lock()
	wasFirst := len(n.opened) > 0 && n.opened[0] == h
	n.opened = slices.DeleteFunc(n.opened, func(o fusefs.FileHandle) bool { return o == h })
	_, writerNext := n.viewHandleLocked().(*writeHandle)
	lastOfElder := len(n.opened) == 0 && n.retired()
	n.mu.Unlock()
	if wasFirst && writerNext {
		// A writer's view answers from now on; the kernel holds the
		// committed one the closed reader gave it.
		n.fsys.invalidateAttrs(&n.Inode)
	}
	if lastOfElder {
		// The node that retired this one may answer with a writer's
		// view from now on.
		name, _ := n.name()
		if c := n.item.GetChild(name); c != nil && c != &n.Inode {
			n.fsys.invalidateAttrs(c)
		}
	}
}

// viewHandle is the open handle whose view of the file the kernel is
// given: the oldest one, passing over writers that were closed and have
// not written since when a handle still open follows. The kernel
// releases a closed handle some time after close(2) returns, and such a
// writer's draft may meanwhile hold a later writer's uncommitted bytes,
// which stat must not show to a reader opened before that writer. Alone,
// a closed writer still answers: it may hold a truncation or a new empty
// file that its RELEASE commits.
func (n *fileNode) viewHandle() fusefs.FileHandle {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.viewHandleLocked()
}

func (n *fileNode) viewHandleLocked() fusefs.FileHandle {
	if len(n.opened) > 0 {
		if _, ok := n.opened[0].(*writeHandle); ok && n.elderOpenLocked() {
			// An elder's readers opened first: theirs is the view,
			// the committed one.
			return nil
		}
	}
	for i, h := range n.opened {
		if w, ok := h.(*writeHandle); ok && i+1 < len(n.opened) && w.closedByCaller() {
			continue
		}
		return h
	}
	return nil
}

// oldestWriter is the node's view handle if it is a writer's.
func (n *fileNode) oldestWriter() *writeHandle {
	w, _ := n.viewHandle().(*writeHandle)
	return w
}

// entryFor is the entry the kernel gets for the node in a LOOKUP or a
// READDIRPLUS: e, the committed one, unless the node's view handle is a
// writer's, whose view GETATTR shows.
func (n *fileNode) entryFor(ctx context.Context, e *sessionmgr.FileEntry) *sessionmgr.FileEntry {
	w := n.oldestWriter()
	if w == nil || n.ino != e.Posix.Ino {
		return e
	}
	if we, err := w.d.Entry(ctx); err == nil {
		return we
	}
	return e
}

// newWriteHandle is a write handle of the node over d, or nil when the
// node is retired (ESTALE).
func (n *fileNode) newWriteHandle(d *sessionmgr.Draft) *writeHandle {
	h, _ := n.admit("", func(openMode) fusefs.FileHandle {
		return &writeHandle{fsys: n.fsys, d: d, node: n}
	})
	w, _ := h.(*writeHandle)
	return w
}

// writer is the draft the node's write handles share, if it has any:
// fchmod, fchown and futimens come without a handle, and once the name is
// gone it is the only way to the file.
func (n *fileNode) writer() *sessionmgr.Draft {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.opened {
		if w, ok := h.(*writeHandle); ok {
			return w.d
		}
	}
	return nil
}

func (n *fileNode) remember(e *sessionmgr.FileEntry) {
	n.mu.Lock()
	c := *e
	n.last = &c
	n.mu.Unlock()
}

// unlinked notes that the node's name is gone: the link count is 0 and
// ctime moves, as for an unlinked inode that is still open.
func (n *fileNode) unlinked(now time.Time) {
	n.mu.Lock()
	if n.last != nil {
		n.last.Unlinked = true
		n.last.Posix.Ctime = now
	}
	n.mu.Unlock()
}

var (
	_ = (fusefs.NodeGetattrer)((*fileNode)(nil))
	_ = (fusefs.NodeSetattrer)((*fileNode)(nil))
	_ = (fusefs.NodeOpener)((*fileNode)(nil))
	_ = (fusefs.NodeGetxattrer)((*fileNode)(nil))
	_ = (fusefs.NodeListxattrer)((*fileNode)(nil))
	_ = (fusefs.NodeSetxattrer)((*fileNode)(nil))
	_ = (fusefs.NodeRemovexattrer)((*fileNode)(nil))
)

// name is the node's current name in its item, or the last one it had
// once unlinked or renamed over (detached is then true).
func (n *fileNode) name() (name string, detached bool) {
	name, parent := n.Parent()
	n.mu.Lock()
	defer n.mu.Unlock()
	if parent == nil {
		return n.lastName, true
	}
	n.lastName = name
	return name, false
}

// setUnlinkedAttr applies fchmod, fchown or futimens to a file whose name
// is gone and that only readers hold: nothing stores it any more, but their
// fstat shows it, as on any filesystem. nil when the node is not such a file.
func (n *fileNode) setUnlinkedAttr(in *fuse.SetAttrIn) *sessionmgr.FileEntry {
	if _, detached := n.name(); !detached {
		return nil
	}
	if _, ok := in.GetSize(); ok {
		return nil // ftruncate needs a write handle, which has a draft
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.last == nil || !n.last.Unlinked {
		return nil
	}
	ch, _ := posixChange(in)
	n.last.Posix = ch.ApplyTo(n.last.Posix, time.Now())
	e := *n.last
	return &e
}

func (n *fileNode) renamed(name string) {
	n.mu.Lock()
	n.lastName = name
	n.mu.Unlock()
}

// current is the node's committed or pending entry under its name, or
// ESTALE when the name now holds another file or none: the kernel then
// looks the name up again (stat(2) and open(2) retry once).
func (n *fileNode) current(ctx context.Context) (*sessionmgr.FileEntry, error) {
	name, _ := n.name()
	e, err := n.fsys.m.ItemEntry(ctx, n.item.id, name)
	if err != nil {
		if errnoOf(err) == syscall.ENOENT {
			return nil, syscall.ESTALE
		}
		return nil, err
	}
	if e.Posix.Ino != n.ino {
		return nil, syscall.ESTALE
	}
	return e, nil
}

func (n *fileNode) path() string { return "/" + n.Path(n.Root()) }

func (n *fileNode) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var e *sessionmgr.FileEntry
	var err error
	// The kernel keeps one size per inode and never says whose fstat this
	// is: go-fuse hands us the node's first open handle. A writer's view
	// must win, or the kernel would put the writer's O_APPEND writes at
	// the committed end; a pinned reader's view must not, or readers of
	// newer versions would be cut short. Readers are DIRECT_IO, so their
	// reads do not depend on the kernel's size.
	writer := n.writer()
	// go-fuse's choice of handle may be one released a moment ago, or a
	// writer already closed; the node's own list is current.
	f = n.viewHandle()
	if h, ok := f.(*passthroughHandle); ok {
		f = h.readHandle
	}
	switch h := f.(type) {
	case *writeHandle:
		e, err = h.d.Entry(ctx)
	case *readHandle:
		// Unlinked or replaced: fstat(2) on the handle goes on working,
		// with the writer's view if there is a writer.
		if e, err = n.current(ctx); errnoOf(err) == syscall.ESTALE && writer != nil {
			e, err = writer.Entry(ctx)
		} else if errnoOf(err) == syscall.ESTALE {
			n.mu.Lock()
			e, err = n.last, nil
			n.mu.Unlock()
			if e == nil {
				e = &h.entry
			}
		}
	default:
		e, err = n.current(ctx)
	}
	if err != nil {
		return n.fsys.toErrno("getattr", n.path(), err)
	}
	n.remember(e)
	fillFileAttr(&out.Attr, e)
	return 0
}

// Setattr is truncate, chmod, chown and utimensat of a file; what is
// committed when is Draft.Setattr's. The change comes through the node's
// handles (own) for ftruncate(2), and for a file whose name is gone, which
// only its writers reach; otherwise it is by path.
func (n *fileNode) Setattr(ctx context.Context, f fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	d, own, err := n.draft(ctx, f)
	if errnoOf(err) == syscall.ENOENT {
		if e := n.setUnlinkedAttr(in); e != nil {
			fillFileAttr(&out.Attr, e)
			return 0
		}
	}
	if err != nil {
		return n.fsys.toErrno("setattr", n.path(), err)
	}
	if !own {
		defer func() {
			if err := d.Close(ctx); err != nil {
				n.fsys.toErrno("setattr", n.path(), err)
			}
		}()
	}
	ch := sessionmgr.SetattrChange{By: callerOf(ctx), ByHandle: own}
	if size, ok := in.GetSize(); ok {
		s := int64(size)
		ch.Size = &s
	}
	ch.Posix, _ = posixChange(in)
	e, changed, err := d.Setattr(ctx, ch)
	if h, ok := f.(*writeHandle); ok && changed {
		h.markChanged()
	}
	if err != nil {
		return n.fsys.toErrno("setattr", n.path(), err)
	}
	n.remember(e)
	fillFileAttr(&out.Attr, e)
	if !e.Pending && !d.Pending() {
		// The committed file's attributes, which a GETATTR would give
		// too: the kernel may keep them (rsync and tar stat each file
		// after its chmod or utimensat). A pending version's are only
		// its writer's view, and a GETATTR may answer otherwise
		// (viewHandle): those the kernel asks for again.
		out.SetTimeout(n.fsys.attrTimeout)
	}
	if n.retired() {
		// The kernel updates this node from the reply; the session
		// manager reports no change of the mount's own (Draft.SetPosix),
		// so the node of the file's current generation is told here.
		name, _ := n.name()
		if c := n.item.GetChild(name); c != nil && c != &n.Inode {
			n.fsys.invalidateAttrs(c)
		}
	}
	return 0
}

// draft returns the node's draft: the handle's own, or the one by name,
// opened (own is false: the caller Closes it).
func (n *fileNode) draft(ctx context.Context, f fusefs.FileHandle) (d *sessionmgr.Draft, own bool, err error) {
	if h, ok := f.(*writeHandle); ok {
		return h.d, true, nil
	}
	name, detached := n.name()
	if detached {
		// Its name is gone, and may hold another file now: only the
		// node's own write handles lead to its file.
		if d = n.writer(); d != nil {
			return d, true, nil
		}
		return nil, false, syscall.ENOENT
	}
	if d, err = n.fsys.m.OpenDraft(ctx, n.item.id, name); err != nil {
		return nil, false, err
	}
	if d.Ino() != n.ino {
		// The name holds another file than the one the kernel asks
		// about (changed through the API meanwhile).
		d.Close(ctx)
		return nil, false, syscall.ESTALE
	}
	return d, false, nil
}

func (n *fileNode) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	if !write {
		return n.openRead(ctx)
	}
	name, detached := n.name()
	d, err := n.fsys.m.OpenDraft(ctx, n.item.id, name)
	if err != nil {
		if detached && errnoOf(err) == syscall.ENOENT {
			err = syscall.ESTALE
		}
		return nil, 0, n.fsys.toErrno("open", n.path(), err)
	}
	h := n.newWriteHandle(d)
	if h == nil {
		d.Close(ctx)
		return nil, 0, syscall.ESTALE
	}
	if flags&syscall.O_TRUNC != 0 {
		if err := d.TruncateAtOpen(ctx, callerOf(ctx)); err != nil {
			h.release(ctx)
			return nil, 0, n.fsys.toErrno("open", n.path(), err)
		}
	}
	// Written bytes go to the daemon, not the page cache: written pages
	// left in the inode's page cache would be read by other descriptors
	// before the commit (guarantee 2).
	return h, fuse.FOPEN_DIRECT_IO, 0
}

func (n *fileNode) openRead(ctx context.Context) (fusefs.FileHandle, uint32, syscall.Errno) {
	name, detached := n.name()
	e, err := n.fsys.m.ItemEntry(ctx, n.item.id, name)
	if err == nil && detached && e.Posix.Ino != n.ino && e.Pending {
		// The name the node had now holds a new file nobody has
		// committed yet: not what the kernel looked up.
		err = syscall.ENOENT
	}
	if err != nil {
		if detached && errnoOf(err) == syscall.ENOENT {
			err = syscall.ESTALE
		}
		return nil, 0, n.fsys.toErrno("open", n.path(), err)
	}
	if e.Pending {
		// A new name not committed yet reads as empty for everybody
		// but its writer.
		h, _ := n.admit("", func(openMode) fusefs.FileHandle {
			return &readHandle{fsys: n.fsys, entry: *e, path: n.path(), node: n}
		})
		if h == nil {
			return nil, 0, syscall.ESTALE
		}
		return h, fuse.FOPEN_DIRECT_IO, 0
	}
	r, err := n.fsys.m.OpenFileReader(ctx, n.item.id, name)
	if err != nil {
		return nil, 0, n.fsys.toErrno("open", n.path(), err)
	}
	// The blob, when the kernel can read it itself: committed blobs
	// never change, so no page is shared between versions.
	blob, passable := r.Passthrough()
	sha := ""
	if passable && n.fsys.passthrough.Load() {
		sha = r.Entry().SHA256
	}
	h, mode := n.admit(sha, func(mode openMode) fusefs.FileHandle {
		h := &readHandle{fsys: n.fsys, r: r, entry: r.Entry(), path: n.path(), node: n}
		if mode == openPassthrough {
			return &passthroughHandle{readHandle: h, blob: blob}
		}
		return h
	})
	switch mode {
	case openStale:
		r.Close()
		return nil, 0, syscall.ESTALE
	case openPassthrough:
		return h, 0, 0 // go-fuse adds FOPEN_PASSTHROUGH
	}
	// DIRECT_IO: the page cache is one per inode, but readers pinned to
	// different versions of the file must not share pages, nor be cut
	// at a size the kernel learned from another version.
	return h, fuse.FOPEN_DIRECT_IO, 0
}

// xattrs: user.clfs.* names answer from the catalog and are not listed, so
// cp -a does not copy them; everything else is ENOTSUP.

const xattrPrefix = "user.clfs."

func (n *fileNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if !strings.HasPrefix(attr, xattrPrefix) {
		return 0, syscall.ENOTSUP
	}
	name, _ := n.name()
	v, err := n.fsys.m.FileXattr(ctx, n.item.id, name, strings.TrimPrefix(attr, xattrPrefix))
	if err != nil {
		errno := errnoOf(err)
		if errno == syscall.ENOENT || errno == syscall.EINVAL {
			return 0, syscall.ENODATA
		}
		return 0, n.fsys.toErrno("getxattr", n.path(), err)
	}
	if len(dest) == 0 {
		return uint32(len(v)), 0
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

func (n *fileNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return 0, 0
}

func (n *fileNode) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.ENOTSUP
}

func (n *fileNode) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return syscall.ENOTSUP
}

// readHandle reads one committed version: the one current at open.
type readHandle struct {
	fsys  *FS
	r     *sessionmgr.FileReader // nil for a new name not committed yet
	entry sessionmgr.FileEntry
	path  string
	node  *fileNode
}

var (
	_ = (fusefs.FileReader)((*readHandle)(nil))
	_ = (fusefs.FileReleaser)((*readHandle)(nil))
	_ = (fusefs.FileGetattrer)((*readHandle)(nil))
	_ = (fusefs.FileFsyncer)((*readHandle)(nil))
)

func (h *readHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if h.r == nil {
		return fuse.ReadResultData(nil), 0
	}
	n, err := h.r.ReadAt(dest, off)
	if err != nil && n == 0 && !isEOF(err) {
		return nil, h.fsys.toErrno("read", h.path, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *readHandle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	fillFileAttr(&out.Attr, &h.entry)
	return 0
}

// Fsync of a committed file: its content is durable since its commit;
// its name and attributes become durable with the catalog's sync.
func (h *readHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return h.fsys.toErrno("fsync", h.path, h.fsys.m.Sync(ctx))
}

func (h *readHandle) Release(ctx context.Context) syscall.Errno {
	h.node.dropHandleAfterRelease(ctx, h)
	if h.r != nil {
		h.r.Close()
	}
	return 0
}

// passthroughHandle reads one committed version from its blob, which the
// kernel reads directly (FUSE passthrough): its reads never come to the
// daemon, so a download session canceled under it does not stop it, and
// it reads its pinned version to the end. Should the kernel refuse the
// blob, reads come to Read as for any reader (flushFilter.Open).
type passthroughHandle struct {
	*readHandle
	blob *os.File
}

var (
	_ = (fusefs.FilePassthroughFder)((*passthroughHandle)(nil))
	_ = (fusefs.FileReader)((*passthroughHandle)(nil))
	_ = (fusefs.FileReleaser)((*passthroughHandle)(nil))
	_ = (fusefs.FileGetattrer)((*passthroughHandle)(nil))
)

// PassthroughFd is the blob's descriptor; the kernel takes its own
// reference when go-fuse registers it, at the open.
func (h *passthroughHandle) PassthroughFd() (int, bool) { return int(h.blob.Fd()), true }

func (h *passthroughHandle) Release(ctx context.Context) syscall.Errno {
	h.node.dropHandleAfterRelease(ctx, h)
	h.r.Close()
	return 0
}

// writeHandle is a handle open for writing. Commit happens in Flush when
// this handle wrote since the last commit, so close(2) reports it.
type writeHandle struct {
	fsys *FS
	d    *sessionmgr.Draft
	node *fileNode

	mu     sync.Mutex
	wrote  bool // GUARDED_BY(mu)
	closed bool // GUARDED_BY(mu)
	// flushed: the caller closed a descriptor of this handle (FLUSH) and
	// has not written through it since.
	flushed bool // GUARDED_BY(mu)
}

var (
	_ = (fusefs.FileReader)((*writeHandle)(nil))
	_ = (fusefs.FileWriter)((*writeHandle)(nil))
	_ = (fusefs.FileFlusher)((*writeHandle)(nil))
	_ = (fusefs.FileFsyncer)((*writeHandle)(nil))
	_ = (fusefs.FileReleaser)((*writeHandle)(nil))
	_ = (fusefs.FileGetattrer)((*writeHandle)(nil))
	_ = (fusefs.FileAllocater)((*writeHandle)(nil))
)

func (h *writeHandle) path() string {
	if h.node != nil {
		return h.node.path()
	}
	return h.d.Name()
}

func (h *writeHandle) markChanged() {
	h.mu.Lock()
	h.wrote = true
	h.flushed = false
	h.mu.Unlock()
}

// closedByCaller reports a handle closed by its caller and waiting for
// the kernel's RELEASE.
func (h *writeHandle) closedByCaller() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.flushed && !h.wrote
}

func (h *writeHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	var n int
	var err error
	if by := callerOf(ctx); off == appendOffset {
		n, err = h.d.AppendAs(ctx, by, data)
	} else {
		n, err = h.d.WriteAs(ctx, by, data, off)
	}
	h.markChanged()
	if err != nil {
		return uint32(n), h.fsys.toErrno("write", h.path(), err)
	}
	return uint32(n), 0
}

// Read serves the writer's own view: staged bytes while there are some,
// else the committed version, the one this node last committed.
func (h *writeHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.d.ReadAt(ctx, dest, off)
	if err != nil && n == 0 && !isEOF(err) {
		return nil, h.fsys.toErrno("read", h.path(), err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *writeHandle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	e, err := h.d.Entry(ctx)
	if err != nil {
		return h.fsys.toErrno("getattr", h.path(), err)
	}
	fillFileAttr(&out.Attr, e)
	return 0
}

// Allocate is fallocate(2): preallocation succeeds, punching and zeroing
// write zeros, both commit at close like a write.
func (h *writeHandle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	changed, err := h.d.Allocate(ctx, int64(off), int64(size), mode)
	if changed {
		h.markChanged()
	}
	return h.fsys.toErrno("fallocate", h.path(), err)
}

// Flush commits what this handle wrote; its error is what close(2) returns.
func (h *writeHandle) Flush(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	wrote := h.wrote
	h.wrote = false
	h.flushed = true
	h.mu.Unlock()
	if !wrote {
		return 0
	}
	return h.fsys.toErrno("close", h.path(), h.d.Commit(ctx))
}

// Fsync makes staged bytes durable, and the namespace changes made so
// far (a rename, a chmod of the file); the commit still waits for close.
func (h *writeHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if err := h.d.Sync(); err != nil {
		return h.fsys.toErrno("fsync", h.path(), err)
	}
	return h.fsys.toErrno("fsync", h.path(), h.fsys.m.Sync(ctx))
}

// Release commits a change no Flush committed (a new empty file, a
// truncation) when it is the node's last handle. The kernel ignores its
// result, so failures are only logged.
func (h *writeHandle) Release(ctx context.Context) syscall.Errno {
	h.release(ctx)
	return 0
}

func (h *writeHandle) release(ctx context.Context) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.mu.Unlock()
	h.node.dropHandleAfterRelease(ctx, h)
	if err := h.d.Close(ctx); err != nil {
		h.fsys.toErrno("release", h.path(), err)
	}
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
