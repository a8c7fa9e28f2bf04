package fs

import (
	"context"
	"math"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Commit happens in FLUSH, so close(2) can report it. But FLUSH comes for
// every close of every copy of a descriptor, and a child process holds
// copies: when a writer starts a program (fork, then exec closes the
// inherited descriptors), the child's close would commit the half-written
// file. The kernel names the closing process's descriptor table in
// FLUSH's lock owner, and the writing one in WRITE's (DIRECT_IO writes
// carry it), so a FLUSH from another table than the last writer's is
// passed over; the writer's own close, or the last RELEASE, commits.

// RawFileSystem is the filesystem as the FUSE server speaks to it: every
// request counted (Counters), its interrupt delayed (patientFS), then the
// flush filter, then the nodes.
func (fsys *FS) RawFileSystem(opts *fusefs.Options) fuse.RawFileSystem {
	nodes := &flushFilter{RawFileSystem: fusefs.NewNodeFS(fsys.root, opts), fsys: fsys, writers: map[uint64]uint64{}}
	if opts != nil && opts.AttrTimeout != nil {
		fsys.attrTimeout = *opts.AttrTimeout
	}
	return &countingFS{RawFileSystem: &patientFS{nodes}, c: &fsys.counters}
}

type flushFilter struct {
	fuse.RawFileSystem
	fsys *FS

	mu      sync.Mutex
	writers map[uint64]uint64 // GUARDED_BY(mu); file handle → lock owner of its last write
}

func (f *flushFilter) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	f.noteWriter(in)
	markAppend(in)
	return f.RawFileSystem.Write(cancel, in, data)
}

func (f *flushFilter) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	f.noteWriter(in)
	markAppend(in)
	return f.RawFileSystem.Writev(cancel, in, data)
}

// appendOffset stands for "at the end" in a WRITE passed on to the file
// handle. A descriptor opened (or fcntl'd) O_APPEND writes at the end of
// the file, which the kernel takes from the size it keeps per inode: the
// committed size when the file's oldest handle is a reader's (see
// fileNode.opened), so two appends in a row landed on the same offset and
// one was lost. The daemon knows the pending end; go-fuse passes a handle
// only the offset, so the offset says it. No real write starts there:
// the kernel refuses writes past the largest file size.
const appendOffset = math.MaxInt64

// markAppend marks a write by an O_APPEND descriptor. Pages written back
// from a shared mapping (WRITE_CACHE) go where they belong, whatever the
// descriptor's flags.
func markAppend(in *fuse.WriteIn) {
	if in.Flags&syscall.O_APPEND != 0 && in.WriteFlags&fuse.WRITE_CACHE == 0 {
		in.Offset = appendOffset
	}
}

func (f *flushFilter) noteWriter(in *fuse.WriteIn) {
	if in.WriteFlags&fuse.WRITE_LOCKOWNER != 0 {
		f.mu.Lock()
		f.writers[in.Fh] = in.LockOwner
		f.mu.Unlock()
	}
}

func (f *flushFilter) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	f.mu.Lock()
	owner, wrote := f.writers[in.Fh]
	f.mu.Unlock()
	if wrote && owner != in.LockOwner {
		return fuse.OK
	}
	return f.RawFileSystem.Flush(cancel, in)
}

func (f *flushFilter) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	f.mu.Lock()
	delete(f.writers, in.Fh)
	f.mu.Unlock()
	f.fsys.releases.begin(cancel)
	f.RawFileSystem.Release(cancel, in)
	f.fsys.releases.end(cancel)
}

// SetAttr lets the kernel keep the attributes a directory's SETATTR reply
// gives it as long as those of a GETATTR: go-fuse leaves their timeout at
// zero. A file's reply says itself (fileNode.Setattr). What changes them
// from elsewhere is pushed to the kernel as for any attributes
// (invalidate.go).
func (f *flushFilter) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	st := f.RawFileSystem.SetAttr(cancel, in, out)
	if st == fuse.OK && out.Mode&syscall.S_IFMT == syscall.S_IFDIR && out.Timeout() == 0 {
		out.SetTimeout(f.fsys.attrTimeout)
	}
	return st
}

// releaseQueue holds what a handle's Release leaves for the end of its
// RELEASE request. go-fuse keeps one backing file per node for the
// node's passthrough handles and drops a reference to it after the
// handle's Release returns, for every handle, passthrough or not (it
// does not tell them apart). Were a daemon handle dropped from its node
// inside Release, a passthrough open admitted before go-fuse's drop
// would have its backing file unregistered under it, and the next
// passthrough open of the inode would register another, which the
// kernel refuses (EIO). Requests are told apart by their cancel channel:
// go-fuse gives each request in flight its own.
type releaseQueue struct {
	mu      sync.Mutex
	pending map[<-chan struct{}][]func() // GUARDED_BY(mu)
}

func (q *releaseQueue) begin(request <-chan struct{}) {
	if request == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending == nil {
		q.pending = map[<-chan struct{}][]func(){}
	}
	q.pending[request] = []func(){}
}

func (q *releaseQueue) end(request <-chan struct{}) {
	if request == nil {
		return
	}
	q.mu.Lock()
	fns := q.pending[request]
	delete(q.pending, request)
	q.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// afterRelease runs fn at the end of the RELEASE request ctx belongs to,
// or now outside one.
func (fsys *FS) afterRelease(ctx context.Context, fn func()) {
	if c, ok := ctx.(*fuse.Context); ok && c.Cancel != nil {
		q := &fsys.releases
		q.mu.Lock()
		if fns, ok := q.pending[c.Cancel]; ok {
			q.pending[c.Cancel] = append(fns, fn)
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
	}
	fn()
}

// Open keeps every handle that does not pass through out of the page
// cache. A passthroughHandle opens with no flags, and go-fuse adds
// FOPEN_PASSTHROUGH once the kernel has taken the blob; if the kernel
// refused it (not root after all), the handle reads through the daemon
// and must be DIRECT_IO like any other reader (see fileNode.openRead).
func (f *flushFilter) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	st := f.RawFileSystem.Open(cancel, in, out)
	if st == fuse.OK && out.OpenFlags&(fuse.FOPEN_PASSTHROUGH|fuse.FOPEN_DIRECT_IO) == 0 {
		out.OpenFlags |= fuse.FOPEN_DIRECT_IO
		f.fsys.passthroughRefused()
	}
	return st
}
