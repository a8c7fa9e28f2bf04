package sessionmgr

import (
	"context"

	"clfs/meta"
)

// Removing a name from an item (unlink): a change like any other, made
// through the item's update session, or through one created and completed
// in a single transaction when none is active.

// RemoveFile unlinks a name of an item: a pending change of it is dropped,
// a committed file is removed through the item's update session at once.
func (m *Manager) RemoveFile(ctx context.Context, itemID, name string) error {
	if err := m.refuseIfReadOnly("remove file"); err != nil {
		return err
	}
	mi := m.mountItem(itemID)
	committed := true
	if d := m.draftByName(mi, name); d != nil {
		// The draft is detached and marked removed before the catalog
		// changes: from here the unlink runs to the end whether or not
		// the caller is still there, or open handles would be left on
		// a name that still exists.
		ctx = context.WithoutCancel(ctx)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.detachIfOpen(ctx)
		if err := d.dropPending(ctx); err != nil {
			return err
		}
		committed = d.committed
		d.removed = true
		m.mu.Lock()
		delete(mi.drafts, d.ino)
		m.mu.Unlock()
		if !committed {
			return nil
		}
	}
	mi.mu.Lock()
	defer mi.mu.Unlock()
	var done bool
	err := m.waitForPeerMount(ctx, func() (err error) {
		done, err = m.removeAtOnce(ctx, mi, name)
		return err
	})
	if done || err != nil {
		return err
	}
	if _, err := m.GetFile(ctx, itemID, name); err != nil {
		return err
	}
	var sid string
	err = m.waitForPeerMount(ctx, func() (err error) {
		sid, err = m.itemSession(ctx, mi)
		return err
	})
	if err != nil {
		return err
	}
	if err := m.RemoveSessionFile(ctx, sid, name); err != nil {
		return err
	}
	// The removal is recorded in the mount's session: it is applied
	// whether or not the caller is still there, or it would stay pending
	// in a session the mount no longer knows (mi.session).
	next, err := m.complete(context.WithoutCancel(ctx), sid, []string{name}, nil)
	mi.session = next
	return err
}

// removeAtOnce removes a committed file of an item that has no ACTIVE
// update session in one transaction (a namespace change: ordered, durable
// with the next sync): an update session is created,
// records the removal, applies it and ends DONE, all in it (rm -rf of
// 5,000 files ran five transactions per file). With a session already
// ACTIVE (other files of the item being written) it does nothing and
// reports done == false: the removal then joins that session. Caller
// holds mi.mu.
func (m *Manager) removeAtOnce(ctx context.Context, mi *mountItem, name string) (done bool, err error) {
	id, err := m.store.NextID(ctx)
	if err != nil {
		return false, err
	}
	var s *meta.UpdateSession
	var drop []meta.ContentKey
	var libName, itemName string
	err = m.updateNamespace(ctx, func(tx *meta.Tx) error {
		s, drop, done = nil, nil, false
		it, err := m.itemRec(tx, mi.id)
		if err != nil {
			return err
		}
		if held, err := m.mountSessionTx(tx, it); err != nil || held != nil {
			return err // busy, or the removal joins the mount's session
		}
		f, err := tx.File(it, name)
		if err != nil {
			return notFoundAs(err, KindNotFound, "file %s/%s not found", itemLabel(tx, it), name)
		}
		if s, err = m.newUpdateSessionTx(tx, it, id, m.owner); err != nil {
			return err
		}
		if err := tx.PutUpdateSessionFile(&meta.UpdateSessionFile{SessionID: s.ID, Name: name, Removed: true}); err != nil {
			return err
		}
		if drop, err = dropRef(tx, f); err != nil {
			return err
		}
		if err := tx.DeleteFile(it, name); err != nil {
			return err
		}
		now := m.now()
		it.AddSize(-f.Size)
		it.ContentVersion++
		it.LastModifiedTime = now
		it.Attr.Mtime, it.Attr.Ctime = now, now
		if err := tx.PutItem(it); err != nil {
			return err
		}
		if lib, err := tx.Library(it.LibraryID); err == nil {
			libName = lib.Name
		}
		itemName = it.Name
		done = true
		return m.endUpdateTx(tx, s, opComplete, "")
	})
	if err != nil || !done {
		return false, err
	}
	m.afterEnd(ctx, []endedSession{{s.ID, s.UUID}})
	m.freeBlobs(ctx, drop)
	if len(m.subscriberList()) > 0 {
		m.notify(Change{Library: libName, Item: itemName, Files: []string{name}})
	}
	return true, nil
}
