package sessionmgr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

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
func (m *Manager) CompleteUpdateSession(ctx context.Context, id string) error {
	var s *meta.UpdateSession
	var changes []meta.UpdateSessionFile
	var root string
	var backingID uint64
	err := m.store.View(func(tx *meta.Tx) error {
		var err error
		if s, err = m.updateRec(tx, id); err != nil {
			return err
		}
		if _, err := next(updateTransitions, updateLabel(s.UUID), State(s.State), opComplete); err != nil {
			return err
		}
		if changes, err = tx.UpdateSessionFiles(s.ID); err != nil {
			return err
		}
		it, err := tx.Item(s.ItemID)
		if err != nil {
			return err
		}
		lib, err := tx.Library(it.LibraryID)
		if err != nil {
			return err
		}
		backingID = lib.BackingID
		root, err = m.backingRoot(tx, lib.BackingID)
		return err
	})
	if err != nil {
		return err
	}
	var shas [][]byte
	for _, c := range changes {
		if c.Removed {
			continue
		}
		if m.liveUpload(s.ID, c.Name) != nil || TransferStatus(c.Status) != TransferReady {
			status := TransferStatus(c.Status)
			if status == TransferWaiting && m.liveUpload(s.ID, c.Name) != nil {
				status = TransferTransferring
			}
			detail := ""
			if c.ErrorMessage != "" {
				detail = ": " + c.ErrorMessage
			}
			return errorf(KindNotAllowedInCurrentState, "cannot complete %s: file %q is %s%s", updateLabel(s.UUID), c.Name, status, detail)
		}
		shas = append(shas, c.SHA256)
	}
	fileIDs := make([]uint64, len(changes))
	for i := range changes {
		if fileIDs[i], err = m.store.NextID(); err != nil {
			return err
		}
	}

	unlock := m.lockContent(shas)
	defer func() { unlock() }()
	var placed []meta.ContentKey // blobs this call created, for roll-back
	for _, c := range changes {
		if c.Removed {
			continue
		}
		created, err := placeContent(root, c.Staging, c.SHA256)
		if created {
			placed = append(placed, meta.ContentKey{BackingID: backingID, SHA256: c.SHA256})
		}
		if err != nil {
			m.rollbackPlaced(root, placed)
			return m.failCommit(s, fmt.Errorf("file %q: %w", c.Name, err))
		}
	}

	var drop []meta.ContentKey
	err = m.store.Update(func(tx *meta.Tx) error {
		drop = nil
		cur, err := tx.UpdateSession(s.ID)
		if err != nil {
			return err
		}
		if _, err := next(updateTransitions, updateLabel(cur.UUID), State(cur.State), opComplete); err != nil {
			return err
		}
		now := m.now()
		it, err := tx.Item(cur.ItemID)
		if err != nil {
			return err
		}
		namesChanged, contentChanged := false, false
		for i, c := range changes {
			now := now
			// The session's changes must be the ones checked above.
			rec, err := tx.UpdateSessionFile(cur.ID, c.Name)
			if err != nil || rec.Staging != c.Staging || rec.Removed != c.Removed || !bytes.Equal(rec.SHA256, c.SHA256) {
				return errorf(KindNotAllowedInCurrentState, "%s changed while completing", updateLabel(cur.UUID))
			}
			old, err := tx.File(it.ID, c.Name)
			if err != nil && !errors.Is(err, meta.ErrNotFound) {
				return err
			}
			if c.Removed {
				if old == nil {
					continue
				}
				d, err := dropRef(tx, old)
				if err != nil {
					return err
				}
				drop = append(drop, d...)
				if err := tx.DeleteFile(it.ID, old.Name); err != nil {
					return err
				}
				namesChanged, contentChanged = true, true
				continue
			}
			f := &meta.File{
				ID: fileIDs[i], ItemID: it.ID, Name: c.Name, Size: c.Size, Version: 1,
				SHA256: c.SHA256, BackingID: backingID,
				Attr: meta.Attr{Mode: 0o644, Mtime: now, Ctime: now},
			}
			if c.Requested != nil {
				f.Requested = c.Requested
			}
			if old != nil {
				f.ID, f.Version = old.ID, old.Version+1
				f.Attr.Mode, f.Attr.UID, f.Attr.GID = old.Attr.Mode, old.Attr.UID, old.Attr.GID
			} else {
				namesChanged = true
			}
			if c.Attr != nil {
				f.Attr.Mode, f.Attr.UID, f.Attr.GID = c.Attr.Mode, c.Attr.UID, c.Attr.GID
				if c.Attr.Mtime != 0 {
					f.Attr.Mtime = c.Attr.Mtime
				}
			}
			if _, err := tx.AddContentRef(meta.ContentKey{BackingID: backingID, SHA256: c.SHA256}, 1, c.Size); err != nil {
				return err
			}
			if old != nil {
				d, err := dropRef(tx, old)
				if err != nil {
					return err
				}
				drop = append(drop, d...)
			}
			if err := tx.PutFile(f); err != nil {
				return err
			}
			contentChanged = true
		}
		if contentChanged {
			it.ContentVersion++
			it.LastModifiedTime = now
			if namesChanged {
				it.Attr.Mtime, it.Attr.Ctime = now, now
			}
			if err := tx.PutItem(it); err != nil {
				return err
			}
		}
		return m.endUpdateTx(tx, cur, opComplete, "")
	})
	if err != nil {
		m.rollbackPlaced(root, placed)
		if KindOf(err) == KindError {
			return m.failCommit(s, err)
		}
		return err
	}
	unlock()
	unlock = func() {}
	m.afterEnd([]endedSession{{s.ID, s.UUID}})
	m.dropUnreferenced(drop)
	return nil
}

// dropRef releases a committed file's reference on its blob and returns
// the blob if that was the last one.
func dropRef(tx *meta.Tx, f *meta.File) ([]meta.ContentKey, error) {
	k := meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256}
	refs, err := tx.AddContentRef(k, -1, 0)
	if err != nil || refs > 0 {
		return nil, err
	}
	return []meta.ContentKey{k}, nil
}

// rollbackPlaced removes blobs a failed commit created; the caller holds
// their content locks and no reference to them was committed.
func (m *Manager) rollbackPlaced(root string, placed []meta.ContentKey) {
	for _, k := range placed {
		var referenced bool
		_ = m.store.View(func(tx *meta.Tx) error {
			_, err := tx.ContentRef(k)
			referenced = err == nil
			return nil
		})
		if !referenced {
			os.Remove(contentPath(root, k.SHA256))
		}
	}
}

// failCommit puts a session whose commit failed on the server's side (full
// disk, I/O error) in ERROR, as the mount's contract says, and returns the
// cause. The item is untouched.
func (m *Manager) failCommit(s *meta.UpdateSession, cause error) error {
	msg := "commit failed: " + cause.Error()
	if err := m.endUpdate(s.UUID, opFail, msg); err != nil {
		m.log.Warn("fail session after commit error", "session", s.UUID, "err", err)
	}
	return wrapf(KindError, cause, "cannot complete %s: %v", updateLabel(s.UUID), cause)
}
