package fs

import (
	fusefs "github.com/hanwen/go-fuse/v2/fs"

	"clfs/sessionmgr"
)

// Changes made by other clients of the session manager (the control
// socket, REST) must show in the mount at once, not after the kernel's
// entry and attribute timeouts. sessionmgr reports every change; the
// kernel is told from this goroutine, never from inside a request handler
// (a notification about a node the kernel has locked for that very request
// would deadlock).

func (fsys *FS) startInvalidator() {
	fsys.wake = make(chan struct{}, 1)
	fsys.invalidatorDone = make(chan struct{})
	fsys.m.Subscribe(func(c sessionmgr.Change) {
		fsys.changesMu.Lock()
		if !fsys.closed {
			fsys.pending = append(fsys.pending, c)
		}
		fsys.changesMu.Unlock()
		fsys.wakeInvalidator()
	})
	go fsys.runInvalidator()
}

func (fsys *FS) wakeInvalidator() {
	select {
	case fsys.wake <- struct{}{}:
	default: // already awake
	}
}

func (fsys *FS) runInvalidator() {
	defer close(fsys.invalidatorDone)
	for range fsys.wake {
		fsys.changesMu.Lock()
		batch, nodes, closed := fsys.pending, fsys.pendingAttrs, fsys.closed
		fsys.pending, fsys.pendingAttrs = nil, nil
		fsys.changesMu.Unlock()
		for _, c := range batch {
			fsys.invalidate(c)
		}
		for _, n := range nodes {
			n.NotifyContent(-1, 0) // attributes only: not a writer's mapped pages
		}
		if closed {
			return
		}
	}
}

// invalidateAttrs makes the kernel ask for a node's attributes again, from
// the invalidator's goroutine.
func (fsys *FS) invalidateAttrs(n *fusefs.Inode) {
	fsys.changesMu.Lock()
	if !fsys.closed {
		fsys.pendingAttrs = append(fsys.pendingAttrs, n)
	}
	fsys.changesMu.Unlock()
	fsys.wakeInvalidator()
}

// Close stops telling the kernel about changes; call it after unmount.
func (fsys *FS) Close() {
	fsys.closeOnce.Do(func() {
		fsys.changesMu.Lock()
		fsys.closed = true
		fsys.pending, fsys.pendingAttrs = nil, nil // unmounted: nobody to tell
		fsys.changesMu.Unlock()
		fsys.wakeInvalidator()
		<-fsys.invalidatorDone
	})
}

// invalidate tells the kernel what a change made stale: the nodes'
// attributes and contents, and the attributes and cached listing of the
// directory holding them (its mtime, size or entries moved too).
//
// Entries (names) are dropped only for a change that says names are Gone,
// or Appeared, through no call of the mount's. The kernel's entry
// invalidation sleeps, uninterruptibly, on the parent directory's lock,
// which a rename or create in that directory holds while it waits for
// this daemon; should
// the daemon die then (kill -9, a crash), the sleeping thread keeps it
// from exiting, its FUSE device stays open, and every process waiting on
// the mount hangs for good (TestCrashKill9Randomized hit it with a commit's
// invalidation racing rsync's rename). The mount's own creates, renames
// and unlinks update the kernel's entries themselves. What is left is a
// name created, deleted or renamed through the API (a commit of an API
// session, a library or item created or renamed), whose stale entry —
// also the kernel's memory that the name did not exist: names that do
// not exist are cached as long as those that do, since rsync and tar look
// a new name up two or three times before they create it — would
// otherwise last the hour-long timeout.
func (fsys *FS) invalidate(c sessionmgr.Change) {
	root := &fsys.root.Inode
	if c.Everything {
		fsys.invalidateAll()
		return
	}
	lib := root.GetChild(c.Library)
	names := c.Gone || c.Appeared
	if c.Item == "" {
		if names {
			root.NotifyEntry(c.Library)
		}
		root.NotifyContent(0, 0)
		if lib != nil {
			lib.NotifyContent(0, 0)
		}
		return
	}
	if lib == nil {
		return
	}
	item := lib.GetChild(c.Item)
	if c.AllFiles {
		if item != nil {
			for name, f := range item.Children() {
				item.NotifyEntry(name)
				f.NotifyContent(0, 0)
			}
			item.NotifyContent(0, 0)
		}
		lib.NotifyContent(0, 0)
		return
	}
	if len(c.Files) == 0 {
		if names {
			lib.NotifyEntry(c.Item)
		}
		lib.NotifyContent(0, 0)
		if item != nil {
			item.NotifyContent(0, 0)
		}
		return
	}
	if item == nil {
		return
	}
	// Names and files first, the listing last: whoever sees the new
	// listing then finds the names as it says.
	for _, name := range c.Files {
		if names {
			item.NotifyEntry(name)
		}
		if f := item.GetChild(name); f != nil {
			f.NotifyContent(0, 0)
		}
	}
	item.NotifyContent(0, 0)
}

// invalidateAll is for changes of other nodes that could not be followed
// one by one: every attribute and listing the kernel holds is asked for
// again, and every file's entry. Directories keep their entries (dropping
// one unhashes the working directory of whoever is in it); a library or
// item gone meanwhile fails with ENOENT at its next use.
func (fsys *FS) invalidateAll() {
	root := &fsys.root.Inode
	root.NotifyContent(0, 0)
	for _, lib := range root.Children() {
		lib.NotifyContent(0, 0)
		for _, item := range lib.Children() {
			item.NotifyContent(0, 0)
			for name, f := range item.Children() {
				item.NotifyEntry(name)
				f.NotifyContent(0, 0)
			}
		}
	}
}
