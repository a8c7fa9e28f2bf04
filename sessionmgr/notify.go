package sessionmgr

import (
	"context"

	"clfs/meta"
)

// Change names what a completed operation changed, for front ends that
// cache what they show (the mount's kernel caches). Names are those before
// the change, so a cache can find its stale entries.
type Change struct {
	Library string
	Item    string   // empty when the library itself changed
	Files   []string // empty when the item itself changed
	// Gone: the names may no longer exist (deleted or renamed) through
	// no call of the mount's, so a cache must drop its entries for them,
	// not only their attributes and contents. The mount's own unlinks and
	// renames need not say so: the kernel made them.
	Gone bool
	// Appeared: the names may have come into existence through no call
	// of the mount's (a library or item created or renamed through the
	// API), so a cache that remembers names that do not exist must drop
	// them. The mount's own mkdir need not say so.
	Appeared bool
	// AllFiles: any file of the item may have changed, gone or
	// appeared (a large commit switched its file table, through no call
	// of the mount's).
	AllFiles bool
	// Everything: anything may have changed (another node's changes
	// could not all be followed): a cache must let go of what it can.
	Everything bool
}

type byMountKey struct{}

// ByMount marks ctx as the mount's own call: the kernel learns of its
// effects from its own request, so the Change need not tell it (see
// Change.Appeared).
func ByMount(ctx context.Context) context.Context {
	return context.WithValue(ctx, byMountKey{}, true)
}

func byMount(ctx context.Context) bool {
	v, _ := ctx.Value(byMountKey{}).(bool)
	return v
}

// Subscribe registers fn to be told of every change. fn runs on the
// changing caller's goroutine and must not block or call back into the
// Manager: hand the change to a goroutine.
//
// On a shared catalog the first Subscribe starts a watch of it, so that
// changes other nodes commit are told too (watch.go).
func (m *Manager) Subscribe(fn func(Change)) {
	m.mu.Lock()
	m.subscribers = append(m.subscribers, fn)
	if m.shared && m.watchStop == nil && !m.closing {
		m.startWatch()
	}
	m.mu.Unlock()
}

func (m *Manager) notify(c Change) {
	m.mu.Lock()
	subs := m.subscribers
	m.mu.Unlock()
	for _, fn := range subs {
		fn(c)
	}
}

// notifyItem reports a change to files of an item, or to the item itself
// when no files are named. It follows a committed change, so it runs
// whether or not the caller is still there.
func (m *Manager) notifyItem(ctx context.Context, itemID string, files ...string) {
	if len(m.subscriberList()) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	var c Change
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		it, err := m.itemRec(tx, itemID)
		if err != nil {
			return err
		}
		lib, err := tx.Library(it.LibraryID)
		if err != nil {
			return err
		}
		c = Change{Library: lib.Name, Item: it.Name, Files: files}
		return nil
	})
	if err == nil {
		m.notify(c)
	}
}

func (m *Manager) subscriberList() []func(Change) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.subscribers
}

// namesOf returns the names of a library and, if itemID is set, an item,
// for a Change about to be made stale.
func (m *Manager) namesOf(ctx context.Context, libraryID, itemID string) (lib, item string) {
	_ = m.store.View(ctx, func(tx *meta.Tx) error {
		if itemID != "" {
			it, err := m.itemRec(tx, itemID)
			if err != nil {
				return err
			}
			item = it.Name
			l, err := tx.Library(it.LibraryID)
			if err == nil {
				lib = l.Name
			}
			return err
		}
		l, err := m.libraryRec(tx, libraryID)
		if err == nil {
			lib = l.Name
		}
		return err
	})
	return lib, item
}
