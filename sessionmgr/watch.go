package sessionmgr

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"clfs/meta"
)

// Other nodes' changes. On a shared catalog the subscribers (the mount's
// kernel caches) must hear of what other nodes commit too, or a file
// committed on node A would show in node B's `ls` only when B's kernel
// let go of its cached entries (an hour). The first Subscribe on a
// shared catalog starts a watch of it (meta.Store.Watch, which leaves out
// this node's own commits); each event becomes a Change by names, as the
// node's own changes do. Names that other nodes create or remove came
// through no call of this mount's, so their Changes say Appeared or Gone.

func (m *Manager) startWatch() {
	ctx, cancel := context.WithCancel(context.Background())
	m.watchStop = cancel
	m.watchDone = make(chan struct{})
	go func() {
		defer close(m.watchDone)
		err := m.store.Watch(ctx, func(evs []meta.CatalogEvent) {
			for _, c := range m.foreignChanges(ctx, evs) {
				m.notify(c)
			}
		})
		if err != nil {
			m.log.Warn("watch the catalog", "err", err)
		}
	}()
}

func (m *Manager) stopWatch() {
	if m.watchStop != nil {
		m.watchStop()
		<-m.watchDone
	}
}

// foreignChanges names what other nodes' commits changed. An item's or a
// file's library or item that is gone from the catalog is left out: its
// own deletion is in the events too.
func (m *Manager) foreignChanges(ctx context.Context, evs []meta.CatalogEvent) []Change {
	var out []Change
	seen := map[string]bool{}
	add := func(c Change) {
		k := c.Library + "\x00" + c.Item + "\x00" + c.fileKey()
		if c.Gone {
			k += "\x00gone"
		}
		if c.Appeared {
			k += "\x00appeared"
		}
		if c.AllFiles {
			k += "\x00all"
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, c)
		}
	}
	libNames := map[uint64]string{}
	items := map[uint64]*meta.Item{}
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		out, seen = nil, map[string]bool{} // the body may run again (meta.Store.View)
		clear(libNames)
		clear(items)
		libName := func(id uint64) (string, bool) {
			if n, ok := libNames[id]; ok {
				return n, n != ""
			}
			l, err := tx.Library(id)
			if err != nil {
				libNames[id] = ""
				return "", false
			}
			libNames[id] = l.Name
			return l.Name, true
		}
		item := func(id uint64) *meta.Item {
			if it, ok := items[id]; ok {
				return it
			}
			it, err := tx.Item(id)
			if err != nil {
				it = nil
			}
			items[id] = it
			return it
		}
		for _, e := range evs {
			switch {
			case e.Resync:
				add(Change{Everything: true})
			case e.Library != nil || e.PrevLibrary != nil:
				// A library hidden for deletion is gone (sweep.go).
				prev, cur := live(e.PrevLibrary, e.PrevLibrary != nil && e.PrevLibrary.Deleting), live(e.Library, e.Library != nil && e.Library.Deleting)
				if prev == nil && cur == nil {
					continue
				}
				named(prev, cur, func(l *meta.Library) string { return l.Name },
					func(name string, gone, appeared bool) { add(Change{Library: name, Gone: gone, Appeared: appeared}) })
			case e.Item != nil || e.PrevItem != nil:
				it := e.Item
				if it == nil {
					it = e.PrevItem
				}
				lib, ok := libName(it.LibraryID)
				prev, cur := live(e.PrevItem, e.PrevItem != nil && e.PrevItem.Deleting), live(e.Item, e.Item != nil && e.Item.Deleting)
				if !ok || (prev == nil && cur == nil) {
					continue
				}
				named(prev, cur, func(i *meta.Item) string { return i.Name },
					func(name string, gone, appeared bool) {
						add(Change{Library: lib, Item: name, Gone: gone, Appeared: appeared})
					})
				if prev != nil && cur != nil && prev.Table() != cur.Table() {
					// A large commit switched the item to a new file
					// table (bigcommit.go): any of its files may have
					// changed, gone or appeared.
					add(Change{Library: lib, Item: cur.Name, AllFiles: true})
				}
			default:
				f := e.File
				if f == nil {
					f = e.PrevFile
				}
				it := item(f.ItemID)
				if it == nil || it.Deleting || it.Table() != f.Table {
					continue // a table being built or swept: no one sees it
				}
				lib, ok := libName(it.LibraryID)
				if !ok {
					continue
				}
				named(e.PrevFile, e.File, func(f *meta.File) string { return f.Name },
					func(name string, gone, appeared bool) {
						add(Change{Library: lib, Item: it.Name, Files: []string{name}, Gone: gone, Appeared: appeared})
					})
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		// The kernel's caches may now be stale: tell them all.
		m.log.Warn("read the catalog for other nodes' changes", "err", err)
		return []Change{{Everything: true}}
	}
	// Files before their item, items before their library: a listing
	// is told last, so whoever reads the new listing finds its names
	// already told too. A commit's events come in no useful order.
	slices.SortStableFunc(out, func(a, b Change) int { return cmp.Compare(a.depth(), b.depth()) })
	return out
}

func (c Change) depth() int {
	switch {
	case c.Everything:
		return 0
	case len(c.Files) > 0 || c.AllFiles:
		return 1
	case c.Item != "":
		return 2
	}
	return 3
}

// live is r, or nil for a record hidden for deletion.
func live[T any](r *T, hidden bool) *T {
	if hidden {
		return nil
	}
	return r
}

// named reports a record's change by name: a creation appears, a deletion
// goes, a rename is both, and a change in place is neither.
func named[T any](prev, cur *T, name func(*T) string, report func(name string, gone, appeared bool)) {
	switch {
	case prev == nil:
		report(name(cur), false, true)
	case cur == nil:
		report(name(prev), true, false)
	case name(prev) != name(cur):
		report(name(prev), true, false)
		report(name(cur), false, true)
	default:
		report(name(cur), false, false)
	}
}

func (c Change) fileKey() string {
	k := ""
	for _, f := range c.Files {
		k += f + "\x00"
	}
	return k
}
