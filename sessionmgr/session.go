package sessionmgr

import (
	"context"
	"errors"
	"os"

	"clfs/meta"
)

// What update and download sessions do alike: a record with the same
// header (meta.SessionHeader), an entry in the expiry index, an API id,
// and keep_alive, cancel, fail, delete and expiry that differ only in
// the state machine they check and in what ending releases. The
// operations are written once, over a sessionKind; update.go and
// download.go hold what is particular to each.

// sessionKind is what the shared operations need to know of one kind of
// session.
type sessionKind[S meta.Session] struct {
	// get reads a session by its catalog ID, rec by its API id (a
	// NotFound naming it if there is none).
	get func(tx *meta.Tx, id uint64) (S, error)
	rec func(m *Manager, tx *meta.Tx, id string) (S, error)
	// check refuses op in the session's state (its state machine).
	check func(s S, op string) error
	// endTx moves an ACTIVE session to the state op leads to and returns
	// the blobs whose last reference it dropped.
	endTx func(m *Manager, tx *meta.Tx, s S, op, message string) ([]meta.ContentKey, error)
	// deleteTx deletes a session's record; as endTx.
	deleteTx func(tx *meta.Tx, s S) ([]meta.ContentKey, error)
	// durable: the end and deletion are synced. An update session's
	// client was told its changes are gone, and its staging goes with
	// it; a download session's end is a reader's bookkeeping, which a
	// crash loses harmlessly (Open recovers its pins).
	durable bool
}

var updateSessions = sessionKind[*meta.UpdateSession]{
	get:   (*meta.Tx).UpdateSession,
	rec:   (*Manager).updateRec,
	check: checkUpdate,
	endTx: func(m *Manager, tx *meta.Tx, s *meta.UpdateSession, op, message string) ([]meta.ContentKey, error) {
		return nil, m.endUpdateTx(tx, s, op, message)
	},
	deleteTx: func(tx *meta.Tx, s *meta.UpdateSession) ([]meta.ContentKey, error) {
		return nil, deleteSessionTx(tx, s)
	},
	durable: true,
}

var downloadSessions = sessionKind[*meta.DownloadSession]{
	get:      (*meta.Tx).DownloadSession,
	rec:      (*Manager).downloadRec,
	check:    checkDownload,
	endTx:    (*Manager).endDownloadTx,
	deleteTx: deleteDownloadTx,
}

func (k sessionKind[S]) transact(ctx context.Context, m *Manager, fn func(tx *meta.Tx) error) error {
	if k.durable {
		return m.store.Update(ctx, fn)
	}
	return m.store.UpdateBuffered(ctx, fn)
}

// newSessionHeader is the header of a session created now on item it.
func (m *Manager) newSessionHeader(id uint64, uuid string, it *meta.Item, owner string) meta.SessionHeader {
	now := m.now()
	return meta.SessionHeader{
		ID: id, UUID: uuid, ItemID: it.ID, ItemContentVersion: it.ContentVersion,
		State: string(StateActive), CreationTime: now, ExpirationTime: now + int64(m.timeout),
		Owner: owner, Node: m.nodeID,
	}
}

// createTx stores a new session (meta indexes its API id and expiry).
func (k sessionKind[S]) createTx(tx *meta.Tx, s S) error {
	return tx.CreateSession(s)
}

// keepAlive moves an ACTIVE session's expiration to now + timeout and
// records the client's progress (0..100; values not above the current
// one are accepted and ignored, spec §12 #20).
func (k sessionKind[S]) keepAlive(ctx context.Context, m *Manager, id string, progress *int64) error {
	if err := checkProgress(progress); err != nil {
		return err
	}
	return m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		s, err := k.rec(m, tx, id)
		if err != nil {
			return err
		}
		if err := k.check(s, opKeepAlive); err != nil {
			return err
		}
		if h := s.Header(); progress != nil && *progress > h.ClientProgress {
			h.ClientProgress = *progress
		}
		return m.extendTx(tx, s)
	})
}

func checkProgress(p *int64) error {
	if p != nil && (*p < 0 || *p > 100) {
		return errorf(KindInvalidArgument, "progress %d is outside 0..100", *p)
	}
	return nil
}

// fail ends a session in ERROR with the client's message, which it must
// give.
func (k sessionKind[S]) fail(ctx context.Context, m *Manager, id, message string) error {
	if message == "" {
		return errorf(KindInvalidArgument, "fail needs a client error message")
	}
	return k.end(ctx, m, id, opFail, message)
}

// end ends a session by op (cancel, fail) and releases what it held.
func (k sessionKind[S]) end(ctx context.Context, m *Manager, id, op, message string) error {
	var drop []meta.ContentKey
	var ended endedSession
	err := k.transact(ctx, m, func(tx *meta.Tx) error {
		s, err := k.rec(m, tx, id)
		if err != nil {
			return err
		}
		ended = endedOf(s)
		drop, err = k.endTx(m, tx, s, op, message)
		return err
	})
	if err != nil {
		return err
	}
	m.afterEnd(ctx, []endedSession{ended})
	m.dropUnreferenced(ctx, drop)
	return nil
}

// delete deletes a session's record, in the states its machine allows.
func (k sessionKind[S]) delete(ctx context.Context, m *Manager, id string) error {
	var drop []meta.ContentKey
	var ended endedSession
	err := k.transact(ctx, m, func(tx *meta.Tx) error {
		s, err := k.rec(m, tx, id)
		if err != nil {
			return err
		}
		if err := k.check(s, opDelete); err != nil {
			return err
		}
		ended = endedOf(s)
		drop, err = k.deleteTx(tx, s)
		return err
	})
	if err != nil {
		return err
	}
	m.afterEnd(ctx, []endedSession{ended})
	m.dropUnreferenced(ctx, drop)
	return nil
}

// expireTx acts on a due entry of the expiry index: a terminal session
// that has lingered is deleted; an ACTIVE one is postponed if it was busy
// since its expiration was stored, else it expires (CANCELED, "session
// expired"). acted says whether it did either; a stale entry is dropped.
func (k sessionKind[S]) expireTx(m *Manager, tx *meta.Tx, e meta.ExpiryEntry, now int64) (acted bool, ended []endedSession, drop []meta.ContentKey, err error) {
	s, err := k.get(tx, e.ID)
	if errors.Is(err, meta.ErrNotFound) || (err == nil && s.Header().ExpirationTime != e.At) {
		return false, nil, nil, tx.DeleteExpiry(e)
	}
	if err != nil {
		return false, nil, nil, err
	}
	h := s.Header()
	ended = []endedSession{endedOf(s)}
	if State(h.State).Terminal() {
		drop, err = k.deleteTx(tx, s)
		return true, ended, drop, err
	}
	if !m.ownsSession(h) {
		// Its node knows activity the record does not show; if that
		// node is gone, the leader fails the session (node.go).
		return false, nil, nil, nil
	}
	if exp := m.expiresAt(h.ID, h.ExpirationTime); exp > now {
		return false, nil, nil, m.postponeTx(tx, s, exp)
	}
	drop, err = k.endTx(m, tx, s, opExpire, expiredMessage)
	return true, ended, drop, err
}

// endTx moves a session to state to with message and lets its record
// linger one more timeout, so that get can still explain what happened
// (spec §12 #4, #6).
func (m *Manager) endTx(tx *meta.Tx, s meta.Session, to State, message string) error {
	h := s.Header()
	h.State, h.ErrorMessage = string(to), message
	h.ExpirationTime = m.now() + int64(m.timeout)
	return tx.PutSession(s) // and moves its expiry entry
}

// deleteSessionTx deletes a session's record (and with it, in meta, its
// expiry entry and its API id).
func deleteSessionTx(tx *meta.Tx, s meta.Session) error {
	return tx.DeleteSession(s)
}

// extendTx moves a session's expiration to now + timeout (never back) and
// stores it.
func (m *Manager) extendTx(tx *meta.Tx, s meta.Session) error {
	h := s.Header()
	return m.postponeTx(tx, s, max(h.ExpirationTime, m.now()+int64(m.timeout)))
}

// postponeTx moves a session's expiration to the instant to and stores it.
func (m *Manager) postponeTx(tx *meta.Tx, s meta.Session, to int64) error {
	s.Header().ExpirationTime = to
	return tx.PutSession(s) // and moves its expiry entry
}

// endedSession names a session that left ACTIVE (or was deleted) in a
// committed transaction, for the clean-up that follows it.
type endedSession struct {
	id   uint64
	uuid string
}

func endedOf(s meta.Session) endedSession {
	h := s.Header()
	return endedSession{h.ID, h.UUID}
}

// headerInfo is the part of a session's model both kinds share; errorID
// is the message id of its error_message.
func (m *Manager) headerInfo(tx *meta.Tx, s meta.Session, errorID string) SessionHeader {
	h := s.Header()
	out := SessionHeader{
		ID: h.UUID, LibraryItemContentVersion: fmtCounter(h.ItemContentVersion),
		ErrorMessage:   newMessage(errorID, h.ErrorMessage),
		ClientProgress: h.ClientProgress,
		State:          State(h.State),
		ExpirationTime: nsTime(h.ExpirationTime),
	}
	if it, err := tx.Item(h.ItemID); err == nil {
		out.LibraryItemID = it.UUID
	}
	if out.State == StateActive {
		out.ExpirationTime = nsTime(m.expiresAt(h.ID, h.ExpirationTime))
	}
	return out
}

// listSessions renders the sessions all returns, only those of one item if
// itemID is set (an unknown item is NotFound, as the API's list says).
func listSessions[R, I any](ctx context.Context, m *Manager, itemID string, all func(*meta.Tx) ([]R, error),
	itemOf func(*R) uint64, info func(*meta.Tx, *R) (*I, error)) ([]I, error) {
	out := []I{}
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		out = out[:0] // the body may run again (meta.Store.View)
		var filter uint64
		if itemID != "" {
			it, err := m.itemRec(tx, itemID)
			if err != nil {
				return err
			}
			filter = it.ID
		}
		recs, err := all(tx)
		if err != nil {
			return err
		}
		for i := range recs {
			if filter != 0 && itemOf(&recs[i]) != filter {
				continue
			}
			v, err := info(tx, &recs[i])
			if err != nil {
				return err
			}
			out = append(out, *v)
		}
		return nil
	})
	return out, err
}

// afterEnd releases what ended sessions held in memory and on disk: their
// readers start failing, their staged bytes are removed. It follows the
// committed end, so it runs whether or not the caller is still there.
func (m *Manager) afterEnd(ctx context.Context, ended []endedSession) {
	ctx = context.WithoutCancel(ctx)
	for _, e := range ended {
		m.mu.Lock()
		ls := m.live[e.id]
		delete(m.live, e.id)
		var staged []*StagedFile
		var pulls []*pull
		if ls != nil {
			ls.ended.Store(true)
			for _, sf := range ls.uploads {
				staged = append(staged, sf)
			}
			for p := range ls.pulls {
				pulls = append(pulls, p)
			}
		}
		m.mu.Unlock()
		for _, p := range pulls {
			p.cancel()
		}
		for _, sf := range staged {
			sf.discard()
		}
		m.removeStaging(ctx, e.uuid)
	}
}

// removeStaging removes an update session's staging directory. Backings
// are few, so look on each rather than remember which one it used.
func (m *Manager) removeStaging(ctx context.Context, sessionUUID string) {
	for _, root := range m.backingRoots(ctx) {
		d := stagingDir(root, sessionUUID)
		if err := os.RemoveAll(d); err != nil {
			m.log.Warn("remove staging", "dir", d, "err", err)
		}
	}
}
