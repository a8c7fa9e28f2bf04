package sessionmgr

import (
	"context"
	"errors"

	"clfs/meta"
)

// Update sessions (spec §6, §7): the only way to change an item's files.
// A session's view is the item's committed table overlaid with its pending
// changes; nothing is visible to anybody else until complete() swaps the
// table in one catalog transaction.

func updateLabel(uuid string) string { return "update session " + uuid }

// CreateUpdateSession starts an update session on an item. An item has at
// most one ACTIVE update session (ResourceBusy); a replayed client token
// returns the session the first call created.
func (m *Manager) CreateUpdateSession(ctx context.Context, spec UpdateSessionCreateSpec, clientToken string) (string, error) {
	if err := m.refuseIfReadOnly("create update session"); err != nil {
		return "", err
	}
	return m.createUpdateSession(ctx, spec, clientToken, "")
}

// createUpdateSession creates a session tagged with its owner: "" for API
// clients, the mount's tag for sessions the mount opens itself.
func (m *Manager) createUpdateSession(ctx context.Context, spec UpdateSessionCreateSpec, clientToken, owner string) (string, error) {
	id, err := m.store.NextID(ctx)
	if err != nil {
		return "", err
	}
	var out string
	err = m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		prev, specHash, err := replayToken(tx, tokenUpdate, clientToken, spec)
		if err != nil || prev != "" {
			out = prev
			return err
		}
		it, err := m.itemRec(tx, spec.LibraryItemID)
		if err != nil {
			return err
		}
		s, err := m.newUpdateSessionTx(tx, it, id, owner)
		if err != nil {
			return err
		}
		for _, w := range spec.WarningBehavior {
			s.WarningBehavior = append(s.WarningBehavior, w.Type)
			s.WarningBehaviorIgnore = append(s.WarningBehaviorIgnore, w.Ignored)
		}
		if len(spec.WarningBehavior) > 0 {
			if err := tx.PutUpdateSession(s); err != nil {
				return err
			}
		}
		out = s.UUID
		return rememberToken(tx, tokenUpdate, clientToken, specHash, s.UUID)
	})
	if err == nil {
		err = m.syncFor(owner)
	}
	return out, err
}

// newUpdateSessionTx creates an ACTIVE update session on the item, which
// must have none: the API allows one per item.
func (m *Manager) newUpdateSessionTx(tx *meta.Tx, it *meta.Item, id uint64, owner string) (*meta.UpdateSession, error) {
	if busy, err := tx.ActiveUpdate(it.ID); err == nil {
		other, err := tx.UpdateSession(busy)
		if err != nil {
			return nil, err
		}
		return nil, errorf(KindResourceBusy, "item %s already has an active update session %s", itemLabel(tx, it), other.UUID)
	} else if !errors.Is(err, meta.ErrNotFound) {
		return nil, err
	}
	s := &meta.UpdateSession{SessionHeader: m.newSessionHeader(id, newUUID(), it, owner)}
	if err := updateSessions.createTx(tx, s); err != nil {
		return nil, err
	}
	return s, tx.SetActiveUpdate(it.ID, s.ID)
}

// syncFor makes session bookkeeping durable for API clients, who are told
// their session exists; the mount's own sessions die with the process
// anyway, and their commit syncs everything before it.
func (m *Manager) syncFor(owner string) error {
	if owner != "" {
		return nil
	}
	return m.store.Sync()
}

// ActiveUpdateSession returns the id of the item's ACTIVE update session,
// or NotFound.
func (m *Manager) ActiveUpdateSession(ctx context.Context, itemID string) (string, error) {
	var out string
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		it, err := m.itemRec(tx, itemID)
		if err != nil {
			return err
		}
		n, err := tx.ActiveUpdate(it.ID)
		if err != nil {
			return notFoundAs(err, KindNotFound, "item %s has no active update session", itemLabel(tx, it))
		}
		s, err := tx.UpdateSession(n)
		if err == nil {
			out = s.UUID
		}
		return err
	})
	return out, err
}

// GetUpdateSession returns a session's current status.
func (m *Manager) GetUpdateSession(ctx context.Context, id string) (*UpdateSession, error) {
	var out *UpdateSession
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		s, err := m.updateRec(tx, id)
		if err != nil {
			return err
		}
		out, err = m.updateInfo(tx, s)
		return err
	})
	return out, err
}

// ListUpdateSessions lists update sessions, of one item if itemID is set.
func (m *Manager) ListUpdateSessions(ctx context.Context, itemID string) ([]UpdateSession, error) {
	return listSessions(ctx, m, itemID, (*meta.Tx).UpdateSessions,
		func(s *meta.UpdateSession) uint64 { return s.ItemID }, m.updateInfo)
}

// UpdateUpdateSession changes the warning behaviour of an ACTIVE session.
func (m *Manager) UpdateUpdateSession(ctx context.Context, id string, spec UpdateSessionUpdateSpec) error {
	if err := m.refuseIfReadOnly("update update session"); err != nil {
		return err
	}
	return m.store.Update(ctx, func(tx *meta.Tx) error {
		s, err := m.updateRec(tx, id)
		if err != nil {
			return err
		}
		if err := checkUpdate(s, opUpdate); err != nil {
			return err
		}
		s.WarningBehavior, s.WarningBehaviorIgnore = nil, nil
		for _, w := range spec.WarningBehavior {
			s.WarningBehavior = append(s.WarningBehavior, w.Type)
			s.WarningBehaviorIgnore = append(s.WarningBehaviorIgnore, w.Ignored)
		}
		return m.extendTx(tx, s)
	})
}

// KeepAliveUpdateSession pushes the session's expiration forward and,
// when progress is given, records the client's progress (0..100; values
// not above the current one are accepted and ignored, spec §12 #20).
func (m *Manager) KeepAliveUpdateSession(ctx context.Context, id string, progress *int64) error {
	if err := m.refuseIfReadOnly("keep update session alive"); err != nil {
		return err
	}
	return updateSessions.keepAlive(ctx, m, id, progress)
}

// CancelUpdateSession abandons an ACTIVE session: staged bytes are
// removed, the item is untouched.
func (m *Manager) CancelUpdateSession(ctx context.Context, id string) error {
	if err := m.refuseIfReadOnly("cancel update session"); err != nil {
		return err
	}
	return updateSessions.end(ctx, m, id, opCancel, "")
}

// FailUpdateSession records the client's failure: the session goes to
// ERROR with the message, staged bytes are removed, the item is untouched.
func (m *Manager) FailUpdateSession(ctx context.Context, id, message string) error {
	if err := m.refuseIfReadOnly("fail update session"); err != nil {
		return err
	}
	return updateSessions.fail(ctx, m, id, message)
}

// DeleteUpdateSession removes a terminal session's record.
func (m *Manager) DeleteUpdateSession(ctx context.Context, id string) error {
	if err := m.refuseIfReadOnly("delete update session"); err != nil {
		return err
	}
	return updateSessions.delete(ctx, m, id)
}

// endUpdateTx moves an ACTIVE session to the state op leads to and
// releases the item's lock.
func (m *Manager) endUpdateTx(tx *meta.Tx, s *meta.UpdateSession, op, message string) error {
	to, err := updateTransition(s, op)
	if err != nil {
		return err
	}
	s.CompletePending = false
	if cur, err := tx.ActiveUpdate(s.ItemID); err == nil && cur == s.ID {
		if err := tx.ClearActiveUpdate(s.ItemID); err != nil {
			return err
		}
	}
	return m.endTx(tx, s, to, message)
}

func (m *Manager) updateRec(tx *meta.Tx, id string) (*meta.UpdateSession, error) {
	n, err := resolve(tx, meta.UpdateSessionObject, "update session", id)
	if err != nil {
		return nil, err
	}
	return tx.UpdateSession(n)
}

func (m *Manager) updateInfo(tx *meta.Tx, s *meta.UpdateSession) (*UpdateSession, error) {
	out := &UpdateSession{
		SessionHeader:   m.headerInfo(tx, s, "com.vmware.content.updatesession.error"),
		PreviewInfo:     PreviewInfo{State: "NOT_APPLICABLE"},
		WarningBehavior: []WarningBehavior{},
	}
	for i, t := range s.WarningBehavior {
		out.WarningBehavior = append(out.WarningBehavior, WarningBehavior{Type: t, Ignored: s.WarningBehaviorIgnore[i]})
	}
	files, err := tx.UpdateSessionFiles(s.ID)
	if err != nil {
		return nil, err
	}
	for i := range files {
		out.BytesTransferred += m.liveTransferred(s.ID, &files[i])
	}
	return out, nil
}

// liveTransferred is a file's bytes_transferred, counting bytes that are
// still only in memory.
func (m *Manager) liveTransferred(sessionID uint64, f *meta.UpdateSessionFile) int64 {
	if sf := m.liveUpload(sessionID, f.Name); sf != nil {
		return max(f.BytesTransferred, sf.transferred.Load())
	}
	return f.BytesTransferred
}

func (m *Manager) liveUpload(sessionID uint64, name string) *StagedFile {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ls := m.live[sessionID]; ls != nil {
		return ls.uploads[name]
	}
	return nil
}
