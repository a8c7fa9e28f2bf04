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
	for _, name := range c.Files {
		item.NotifyEntry(name)
		if f := item.GetChild(name); f != nil {
			f.NotifyContent(0, 0)
		}
	}
}
