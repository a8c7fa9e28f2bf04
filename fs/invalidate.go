package fs

import (
	"clfs/sessionmgr"
)

// Changes made by other clients of the session manager (the control
// socket, REST) must show in the mount at once, not after the kernel's
// entry and attribute timeouts. sessionmgr reports every change; the
// kernel is told from this goroutine, never from inside a request handler
// (a notification about a node the kernel has locked for that very request
// would deadlock).

const invalidateQueue = 1024

func (fsys *FS) startInvalidator() {
	fsys.changes = make(chan sessionmgr.Change, invalidateQueue)
	fsys.invalidatorDone = make(chan struct{})
	fsys.m.Subscribe(func(c sessionmgr.Change) {
		select {
		case fsys.changes <- c:
		default:
			// Full: the kernel's caches expire within a second anyway.
		}
	})
	go fsys.runInvalidator()
}

func (fsys *FS) runInvalidator() {
	defer close(fsys.invalidatorDone)
	for c := range fsys.changes {
		fsys.invalidate(c)
	}
}

// Close stops telling the kernel about changes; call it after unmount.
func (fsys *FS) Close() {
	fsys.closeOnce.Do(func() {
		close(fsys.changes)
		<-fsys.invalidatorDone
	})
}

func (fsys *FS) invalidate(c sessionmgr.Change) {
	root := &fsys.root.Inode
	lib := root.GetChild(c.Library)
	if c.Item == "" {
		root.NotifyEntry(c.Library)
		if lib != nil {
			lib.NotifyContent(0, 0)
		}
		return
	}
	if lib == nil {
		return
	}
	item := lib.GetChild(c.Item)
	if len(c.Files) == 0 {
		lib.NotifyEntry(c.Item)
		if item != nil {
			item.NotifyContent(0, 0)
		}
		return
	}
	if item == nil {
		return
	}
	// Files: only their attributes and pages, never their entries. The
	// kernel's entry invalidation sleeps, uninterruptibly, on the item
	// directory's lock, which a rename or create in that directory holds
	// while it waits for this daemon; should the daemon die then (kill -9,
	// a crash), the sleeping thread keeps it from exiting, its FUSE device
	// stays open, and every process waiting on the mount hangs for good.
	// Entries of files need no invalidation: the mount's own creates,
	// renames and unlinks update the kernel's, and no API call renames or
	// adds a name that a cached negative entry could hide
	// (NegativeTimeout is 0); a file removed through the API fails its
	// next GETATTR, which drops the entry.
	for _, name := range c.Files {
		if f := item.GetChild(name); f != nil {
			f.NotifyContent(0, 0)
		}
	}
}
