package sessionmgr

import (
	"context"
	"errors"
	"time"

	"clfs/meta"
)

// Expiry is state plus a reaper, not a Badger TTL: an idle ACTIVE session
// is moved to CANCELED with "session expired" (spec §12 #4) and its staging
// removed; a terminal session is deleted once it has lingered one timeout.
// Activity seen in memory (reads, writes, open handles) postpones expiry
// without a catalog write per byte: the reaper moves the index entry when
// it finds the session was busy.

const expiredMessage = "session expired"

func (m *Manager) runReaper(interval time.Duration) {
	defer m.reaper.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			if _, err := m.ExpireDue(context.Background()); err != nil {
				m.log.Warn("session reaper", "err", err)
			}
		}
	}
}

// ExpireDue expires every session whose expiration time has passed and
// deletes terminal sessions that have lingered long enough. It returns how
// many sessions it expired or deleted.
func (m *Manager) ExpireDue(ctx context.Context) (int, error) {
	now := m.now()
	var due []meta.ExpiryEntry
	if err := m.store.View(func(tx *meta.Tx) (err error) {
		due, err = tx.DueExpiries(now)
		return err
	}); err != nil {
		return 0, err
	}
	count := 0
	for _, e := range due {
		if m.readOnly && e.Kind == meta.UpdateSessionKind {
			continue // left as the last writer left it (see recover)
		}
		acted, err := m.expireOne(e, now)
		if err != nil {
			return count, err
		}
		if acted {
			count++
		}
	}
	return count, nil
}

func (m *Manager) expireOne(e meta.ExpiryEntry, now int64) (bool, error) {
	var ended []endedSession
	var drop []meta.ContentKey
	acted := false
	err := m.store.UpdateBuffered(func(tx *meta.Tx) error {
		ended, drop, acted = nil, nil, false
		switch e.Kind {
		case meta.UpdateSessionKind:
			s, err := tx.UpdateSession(e.ID)
			if errors.Is(err, meta.ErrNotFound) || (err == nil && s.ExpirationTime != e.At) {
				return tx.DeleteExpiry(e) // stale index entry
			}
			if err != nil {
				return err
			}
			if State(s.State).Terminal() {
				acted = true
				ended = []endedSession{{s.ID, s.UUID}}
				return deleteUpdateTx(tx, s)
			}
			if exp := m.expiresAt(s.ID, s.ExpirationTime); exp > now {
				return m.postpone(tx, e, exp, &s.ExpirationTime, func() error { return tx.PutUpdateSession(s) })
			}
			acted = true
			ended = []endedSession{{s.ID, s.UUID}}
			return m.endUpdateTx(tx, s, opExpire, expiredMessage)
		case meta.DownloadSessionKind:
			s, err := tx.DownloadSession(e.ID)
			if errors.Is(err, meta.ErrNotFound) || (err == nil && s.ExpirationTime != e.At) {
				return tx.DeleteExpiry(e)
			}
			if err != nil {
				return err
			}
			acted = true
			ended = []endedSession{{s.ID, s.UUID}}
			if State(s.State).Terminal() {
				drop, err = deleteDownloadTx(tx, s)
				return err
			}
			if exp := m.expiresAt(s.ID, s.ExpirationTime); exp > now {
				acted, ended = false, nil
				return m.postpone(tx, e, exp, &s.ExpirationTime, func() error { return tx.PutDownloadSession(s) })
			}
			drop, err = m.endDownloadTx(tx, s, opExpire, expiredMessage)
			return err
		default:
			return tx.DeleteExpiry(e)
		}
	})
	if err != nil {
		return false, err
	}
	m.afterEnd(ended)
	m.dropUnreferenced(drop)
	return acted, nil
}

func (m *Manager) postpone(tx *meta.Tx, e meta.ExpiryEntry, to int64, exp *int64, put func() error) error {
	if err := tx.DeleteExpiry(e); err != nil {
		return err
	}
	*exp = to
	if err := tx.PutExpiry(meta.ExpiryEntry{At: to, Kind: e.Kind, ID: e.ID}); err != nil {
		return err
	}
	return put()
}
