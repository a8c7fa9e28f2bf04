package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// listing is an open library or item directory. Its entries, with their
// attributes, are read from the catalog once, at the first READDIR(PLUS),
// which then answers each entry's lookup from them instead of one catalog
// read per entry (ls -lR, find and rsync read every directory that way).
// The kernel keeps what it read (FOPEN_CACHE_DIR) until the directory
// changes: through the mount it knows, otherwise fs/invalidate.go tells
// it; an opendir served from that cache reads nothing here.
type listing struct {
	self    *fusefs.Inode
	load    func(ctx context.Context, h *listing) syscall.Errno // fills entries once
	loaded  bool
	entries []fuse.DirEntry
	// children make the node of each listed name, filling out.
	children map[string]func(ctx context.Context, out *fuse.EntryOut) *fusefs.Inode
	next     int
	// lookup finds a name that is not in the listing (created since).
	lookup func(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno)
}

var (
	_ = (fusefs.FileReaddirenter)((*listing)(nil))
	_ = (fusefs.FileSeekdirer)((*listing)(nil))
	_ = (fusefs.FileLookuper)((*listing)(nil))
)

// listingFlags ask the kernel to cache the listing across opens.
const listingFlags = fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE

// newListing opens a directory whose load adds its entries and lookup
// finds names created since.
func newListing(self *fusefs.Inode, lookup func(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno), load func(ctx context.Context, h *listing) syscall.Errno) *listing {
	return &listing{self: self, load: load, lookup: lookup}
}

func (h *listing) ensureLoaded(ctx context.Context) syscall.Errno {
	if h.loaded {
		return 0
	}
	h.entries = append(h.entries[:0], dots(h.self)...)
	h.children = map[string]func(ctx context.Context, out *fuse.EntryOut) *fusefs.Inode{}
	if errno := h.load(ctx, h); errno != 0 {
		return errno
	}
	h.loaded = true
	return 0
}

// add appends an entry and what makes its node.
func (h *listing) add(de fuse.DirEntry, child func(ctx context.Context, out *fuse.EntryOut) *fusefs.Inode) {
	h.children[de.Name] = child
	h.entries = append(h.entries, de)
}

func (h *listing) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if errno := h.ensureLoaded(ctx); errno != 0 {
		return nil, errno
	}
	if h.next >= len(h.entries) {
		return nil, 0
	}
	de := h.entries[h.next]
	h.next++
	// The offset of an entry is where reading resumes after it.
	de.Off = uint64(h.next)
	return &de, 0
}

func (h *listing) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	h.next = int(min(off, uint64(len(h.entries))))
	return 0
}

func (h *listing) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if child, ok := h.children[name]; ok && h.loaded {
		return child(ctx, out), 0
	}
	return h.lookup(ctx, name, out)
}
