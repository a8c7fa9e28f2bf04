package sessionmgr

import (
	"context"
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
	m.every(interval, "session reaper", func(ctx context.Context) error {
		_, err := m.ExpireDue(ctx)
		if err == nil && !m.shared && !m.readOnly {
			// A deletion a crash cut short (sweep.go); on a shared
			// catalog the leader finishes them.
			err = m.sweepAWhile(ctx, sweepReaperBudget)
		}
		return err
	})
}

// every runs round every interval until Close, logging its errors as
// what. It is a background goroutine of the Manager's (m.reaper): its
// rounds have no caller to stop them.
func (m *Manager) every(interval time.Duration, what string, round func(ctx context.Context) error) {
	defer m.reaper.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			if err := round(context.Background()); err != nil {
				m.log.Warn(what, "node", m.nodeID, "err", err)
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
	if err := m.store.View(ctx, func(tx *meta.Tx) (err error) {
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
		acted, err := m.expireOne(ctx, e, now)
		if err != nil {
			return count, err
		}
		if acted {
			count++
		}
	}
	return count, nil
}

func (m *Manager) expireOne(ctx context.Context, e meta.ExpiryEntry, now int64) (bool, error) {
	var ended []endedSession
	var drop []meta.ContentKey
	acted := false
	err := m.store.UpdateBuffered(ctx, func(tx *meta.Tx) (err error) {
		switch e.Kind {
		case meta.UpdateSessionKind:
			acted, ended, drop, err = updateSessions.expireTx(m, tx, e, now)
		case meta.DownloadSessionKind:
			acted, ended, drop, err = downloadSessions.expireTx(m, tx, e, now)
		default:
			acted, ended, drop, err = false, nil, nil, tx.DeleteExpiry(e)
		}
		return err
	})
	if err != nil {
		return false, err
	}
	m.afterEnd(ctx, ended)
	m.dropUnreferenced(ctx, drop)
	return acted, nil
}
