package sessionmgr

import (
	"context"
	"fmt"
	"slices"

	"clfs/meta"
)

// CompleteUpdateSession applies the session's changes to its item:
//
//  1. every added file must be READY (received and validated); otherwise
//     NotAllowedInCurrentState and the session stays ACTIVE, so the
//     client can fix it and retry (spec §12 #7);
//  2. the staged bytes become content blobs (a hard link, fsynced): the
//     content is durable before anything refers to it;
//  3. one catalog transaction swaps the item's file table, bumps file
//     versions and the item's content_version, moves reference counts and
//     ends the session DONE;
//  4. blobs nobody references any more are removed, and the staging.
//
// Readers pinned to the previous version keep their blobs: download
// sessions hold references until they end.
//
// While PULL files are still being fetched, complete only marks the
// session completing and returns: the last pull to end commits it (or
// fails it), see finishPendingComplete.
func (m *Manager) CompleteUpdateSession(ctx context.Context, id string) error {
	if err := m.refuseIfReadOnly("complete update session"); err != nil {
		return err
	}
	sid, deferred, err := m.deferComplete(ctx, id)
	if err != nil {
		return err
	}
	if deferred {
		// A pull that ended before the mark was committed left the
		// commit to us. The mark is committed and the client told
		// complete succeeded: the commit runs even if it hangs up.
		m.finishPendingComplete(context.WithoutCancel(ctx), sid)
		return nil
	}
	_, err = m.complete(ctx, id, nil, nil)
	return err
}

// deferComplete marks the session completing if PULL files are still
// being fetched (spec §6.4, PULL case) and reports whether it did. Every
// other file must be ready, as for any complete: a PULL file already in
// ERROR fails the call and the session stays ACTIVE.
//
// The mark and the end of a pull are both transactions that read what
// the other writes, so one of them sees the other: either the complete
// finds the pull ended, or the pull finds the mark and finishes the
// complete (finishPendingComplete).
func (m *Manager) deferComplete(ctx context.Context, id string) (sessionID uint64, deferred bool, err error) {
	err = m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		deferred = false
		s, err := m.updateRec(tx, id)
		if err != nil {
			return err
		}
		sessionID = s.ID
		if err := checkUpdate(s, opComplete); err != nil {
			return err
		}
		files, err := tx.UpdateSessionFiles(s.ID)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(files, pulling) {
			return nil
		}
		for i := range files {
			if f := &files[i]; !f.Removed && !pulling(*f) {
				if err := m.checkReady(s, f); err != nil {
					return err
				}
			}
		}
		s.CompletePending, deferred = true, true
		return m.extendTx(tx, s)
	})
	if err == nil && deferred {
		// Recovery must know the client was told complete succeeded.
		err = m.store.Sync()
	}
	return sessionID, deferred, err
}

// pulling reports whether a change is a PULL file still being fetched.
func pulling(f meta.UpdateSessionFile) bool {
	return !f.Removed && f.SourceType == SourcePull && TransferStatus(f.Status) == TransferTransferring
}

// finishPendingComplete ends a completing session once no pull runs any
// more: DONE through the same commit as a synchronous complete (content
// visible at once, content_version bumped, subscribers told), or ERROR
// naming the file whose pull failed; a failure does not wait for the
// other pulls, which the session's end aborts. A session that is not
// completing is left alone. Calls are serialized, so that of two pulls
// ending together the later one sees the earlier's result.
func (m *Manager) finishPendingComplete(ctx context.Context, sessionID uint64) {
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	var s *meta.UpdateSession
	var failed *meta.UpdateSessionFile
	running := false
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		var err error
		if s, err = tx.UpdateSession(sessionID); err != nil {
			return err
		}
		if updateState(s) != stateCompleting {
			return nil
		}
		files, err := tx.UpdateSessionFiles(s.ID)
		if err != nil {
			return err
		}
		for i := range files {
			f := &files[i]
			switch {
			case f.Removed:
			case pulling(*f):
				running = true
			case TransferStatus(f.Status) != TransferReady && failed == nil:
				failed = f
			}
		}
		return nil
	})
	if err != nil || updateState(s) != stateCompleting {
		return
	}
	if failed != nil {
		msg := failed.ErrorMessage
		if msg == "" {
			msg = fmt.Sprintf("file %q is %s", failed.Name, failed.Status)
		}
		m.failPendingComplete(ctx, sessionID, "cannot complete: "+msg)
		return
	}
	if running {
		return
	}
	if _, err := m.commit(ctx, s.UUID, nil, nil, opCommit); err != nil {
		// A server-side failure has put the session in ERROR already;
		// a session cancelled meanwhile is left as it is.
		m.failPendingComplete(ctx, sessionID, "cannot complete: "+messageOf(err))
	}
}

// failPendingComplete puts a session that is still completing in ERROR.
func (m *Manager) failPendingComplete(ctx context.Context, sessionID uint64, msg string) {
	var ended []endedSession
	err := m.store.Update(ctx, func(tx *meta.Tx) error {
		ended = nil
		s, err := tx.UpdateSession(sessionID)
		if err != nil || updateState(s) != stateCompleting {
			return err
		}
		ended = []endedSession{{s.ID, s.UUID}}
		return m.endUpdateTx(tx, s, opFail, msg)
	})
	if err != nil {
		m.log.Warn("fail a pending complete", "session", sessionID, "err", err)
		return
	}
	m.afterEnd(ctx, ended)
}
