package sessionmgr

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"clfs/meta"
)

// The commit of an update session's changes, all of them (complete) or
// some (the mount commits file by file): plan, place the blobs, one catalog
// transaction, clean-up; and what a commit that fails leaves behind.

// fileOverride is what the mount knows about a file at commit time that
// the session's record does not: the attributes set on it while pending,
// and the inode number it was shown under.
type fileOverride struct {
	attr   *meta.Attr
	fileID uint64
	// sealed is the file's upload, finished by the caller and not
	// recorded READY: the commit records it, in its one transaction.
	sealed *sealedUpload
}

// commitPlan is a session's changes split into those applied now and those
// carried to a successor session.
type commitPlan struct {
	op        string // opComplete, or opCommit for a pending complete
	s         *meta.UpdateSession
	root      string
	backingID uint64
	apply     []meta.UpdateSessionFile
	carry     []meta.UpdateSessionFile
	// names of the library and item, for the change notification
	libName, itemName string
	// sealed holds the uploads handed in by the caller, by name; their
	// apply entries carry the sealed result, not the record's.
	sealed map[string]*sealedUpload
}

// spillOverBudget writes the in-memory uploads of a commit that would
// take it past inlineCommitBudget to their staging files: they are then
// committed as blob files (see inlineCommitBudget).
func spillOverBudget(p *commitPlan) error {
	var used int64
	for _, list := range [][]meta.UpdateSessionFile{p.apply, p.carry} {
		for _, c := range list {
			if c.Inline && p.sealed[c.Name] == nil {
				used += c.Size
			}
		}
	}
	for _, c := range p.apply {
		up := p.sealed[c.Name]
		if c.Removed || up == nil || !up.inMemory {
			continue
		}
		if used+up.size <= inlineCommitBudget {
			used += up.size
			continue
		}
		if err := writeStagingFile(up.staging, up.inline); err != nil {
			return fmt.Errorf("file %q: %w", c.Name, err)
		}
		up.inMemory, up.inline = false, nil
	}
	return nil
}

// complete applies the changes of session id. With only == nil it applies
// all of them; otherwise just the named ones, and the other changes move,
// in the same transaction, to a successor session that takes over the
// item's lock (the mount commits files one by one while others of the
// same item are still being written). It returns the successor's id, if
// there is one.
func (m *Manager) complete(ctx context.Context, id string, only []string, over map[string]fileOverride) (string, error) {
	return m.commit(ctx, id, only, over, opComplete)
}

// commit is complete under op: opComplete for a client's complete,
// opCommit when the last pull ends a pending one.
func (m *Manager) commit(ctx context.Context, id string, only []string, over map[string]fileOverride, op string) (string, error) {
	p, err := m.planCommit(ctx, id, only, op)
	if err != nil {
		return "", err
	}
	var verdict error
	for i := range p.apply {
		c := &p.apply[i]
		up := over[c.Name].sealed
		if up == nil {
			continue
		}
		if c.Removed || c.Staging != up.staging {
			return "", errorf(KindNotAllowedInCurrentState, "%s: file %q changed while completing", updateLabel(p.s.UUID), c.Name)
		}
		if verdict == nil {
			verdict = judge(c, up.size, up.requested, up.err)
		}
		if err := setTransferStatus(c, TransferReady); err != nil {
			return "", err
		}
		c.ErrorMessage = ""
		c.Size, c.SHA256, c.BytesTransferred = up.size, up.sha, up.transferred
		if p.sealed == nil {
			p.sealed = map[string]*sealedUpload{}
		}
		p.sealed[c.Name] = up
	}
	var shas [][]byte
	for _, c := range p.apply {
		if c.Removed {
			continue
		}
		if p.sealed[c.Name] == nil {
			if err := m.checkReady(p.s, &c); err != nil {
				return "", err
			}
		}
		shas = append(shas, c.SHA256)
	}
	fileIDs := make([]uint64, len(p.apply))
	for i := range p.apply {
		if o, ok := over[p.apply[i].Name]; ok && o.fileID != 0 {
			fileIDs[i] = o.fileID
		} else if fileIDs[i], err = m.store.NextID(ctx); err != nil {
			return "", err
		}
	}
	succ, err := m.newSuccessor(ctx, p)
	if err != nil {
		return "", err
	}
	if verdict != nil {
		return "", m.failCommit(ctx, p, succ, verdict)
	}

	if err := spillOverBudget(p); err != nil {
		return "", m.failCommit(ctx, p, succ, err)
	}

	unlock := m.lockContent(shas)
	defer func() { unlock() }()
	var placed []meta.ContentKey // blobs this call created, for roll-back
	place := func() error {
		for _, c := range p.apply {
			if c.Removed || c.Inline || (p.sealed[c.Name] != nil && p.sealed[c.Name].inMemory) {
				continue // inline bytes move inside the catalog transaction
			}
			created, err := placeContent(p.root, c.Staging, c.SHA256)
			if created {
				placed = append(placed, meta.ContentKey{BackingID: p.backingID, SHA256: c.SHA256})
			}
			if err != nil {
				return fmt.Errorf("file %q: %w", c.Name, err)
			}
		}
		return nil
	}
	if err := place(); err != nil {
		m.rollbackPlaced(ctx, p.root, placed)
		unlock()
		unlock = func() {}
		return "", m.failCommit(ctx, p, succ, err)
	}
	moved, err := succ.moveStaging(m, p)
	if err != nil {
		m.rollbackPlaced(ctx, p.root, placed)
		return "", err
	}

	var drop []meta.ContentKey
	if m.commitTxHook != nil {
		m.commitTxHook(false)
	}
	big := isBigCommit(p)
	for attempt := 0; ; attempt++ {
		if big {
			err = m.commitBig(ctx, p, fileIDs) // bigcommit.go
		} else {
			err = m.store.Update(ctx, func(tx *meta.Tx) error {
				var err error
				drop, err = m.applyTx(tx, p, fileIDs, over)
				if err != nil {
					return err
				}
				cur, err := tx.UpdateSession(p.s.ID)
				if err != nil {
					return err
				}
				if err := m.endUpdateTx(tx, cur, p.op, ""); err != nil {
					return err
				}
				return succ.createTx(tx, m, p, moved)
			})
		}
		if !errors.Is(err, meta.ErrContentDeleting) || attempt >= placeAgainAttempts {
			break
		}
		// The leader of a shared catalog is deleting a blob file
		// this commit found in place (node.go): once it is gone,
		// place the bytes again.
		if err = sleepCtx(ctx, placeAgainWait); err == nil {
			err = place()
		}
		if err != nil {
			break
		}
	}
	if err != nil {
		succ.undoStaging(moved)
		m.rollbackPlaced(ctx, p.root, placed)
		if big {
			unlock()
			unlock = func() {}
			m.finishDeleting(context.WithoutCancel(ctx)) // the table it built
			if failsSession(ctx, err) {
				m.afterEnd(ctx, []endedSession{{p.s.ID, p.s.UUID}})
				return "", wrapf(KindError, err, "cannot complete %s: %v", updateLabel(p.s.UUID), err)
			}
			return "", err
		}
		// A caller gone (ctx ended) stopped the transaction before it
		// committed: nothing changed, and the session stays as it was.
		if !big && serverSide(err) && !callerGone(ctx, err) {
			unlock()
			unlock = func() {}
			return "", m.failCommit(ctx, p, succ, err)
		}
		return "", err
	}
	if m.commitTxHook != nil {
		m.commitTxHook(true)
	}
	unlock()
	unlock = func() {}
	// Committed: what follows runs to the end whether or not the caller
	// is still there (afterEnd, dropUnreferenced and notify do not stop
	// on ctx).
	succ.takeLive(m, p)
	m.afterEnd(ctx, []endedSession{{p.s.ID, p.s.UUID}})
	m.dropUnreferenced(ctx, drop)
	if big {
		m.finishDeleting(context.WithoutCancel(ctx)) // the item's old table
	}
	if len(p.apply) > 0 {
		names := make([]string, 0, len(p.apply))
		for _, c := range p.apply {
			names = append(names, c.Name)
		}
		if len(m.subscriberList()) > 0 {
			// A session of the mount's own changed names the
			// kernel already knows; anyone else's may have removed
			// names it caches.
			m.notify(Change{Library: p.libName, Item: p.itemName, Files: names, Gone: p.s.Owner != m.owner})
		}
	}
	return succ.sessionID(), nil
}

func (m *Manager) planCommit(ctx context.Context, id string, only []string, op string) (*commitPlan, error) {
	p := &commitPlan{op: op}
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		*p = commitPlan{op: op} // the body may run again (meta.Store.View)
		var err error
		if p.s, err = m.updateRec(tx, id); err != nil {
			return err
		}
		if err := checkUpdate(p.s, op); err != nil {
			return err
		}
		changes, err := tx.UpdateSessionFiles(p.s.ID)
		if err != nil {
			return err
		}
		for _, c := range changes {
			if only == nil || slices.Contains(only, c.Name) {
				p.apply = append(p.apply, c)
			} else {
				p.carry = append(p.carry, c)
			}
		}
		it, err := tx.Item(p.s.ItemID)
		if err != nil {
			return err
		}
		lib, err := tx.Library(it.LibraryID)
		if err != nil {
			return err
		}
		p.libName, p.itemName = lib.Name, it.Name
		p.backingID = lib.BackingID
		p.root, err = m.backingRoot(tx, lib.BackingID)
		return err
	})
	return p, err
}

// checkReady refuses to complete while an added file is not received and
// valid; the session stays ACTIVE.
func (m *Manager) checkReady(s *meta.UpdateSession, c *meta.UpdateSessionFile) error {
	live := m.liveUpload(s.ID, c.Name) != nil
	if !live && TransferStatus(c.Status) == TransferReady {
		return nil
	}
	status := shownTransferStatus(c, live)
	detail := ""
	if c.ErrorMessage != "" {
		detail = ": " + c.ErrorMessage
	}
	return errorf(KindNotAllowedInCurrentState, "cannot complete %s: file %q is %s%s", updateLabel(s.UUID), c.Name, status, detail)
}

// applyTx swaps the applied changes into the item's file table and
// returns the blobs that lost their last reference.
func (m *Manager) applyTx(tx *meta.Tx, p *commitPlan, fileIDs []uint64, over map[string]fileOverride) ([]meta.ContentKey, error) {
	var drop []meta.ContentKey
	cur, err := tx.UpdateSession(p.s.ID)
	if err != nil {
		return nil, err
	}
	if err := checkUpdate(cur, p.op); err != nil {
		return nil, err
	}
	now := m.now()
	it, err := tx.Item(cur.ItemID)
	if err != nil {
		return nil, err
	}
	namesChanged, contentChanged := false, false
	for i, c := range p.apply {
		up := p.sealed[c.Name]
		if err := unchanged(tx, cur, &c, up != nil); err != nil {
			return nil, err
		}
		if up != nil {
			// The record shows what was committed, as Finish would.
			if err := tx.PutUpdateSessionFile(&c); err != nil {
				return nil, err
			}
		}
		old, err := tx.File(it, c.Name)
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			return nil, err
		}
		if c.Removed {
			if old == nil {
				continue
			}
			d, err := dropRef(tx, old)
			if err != nil {
				return nil, err
			}
			drop = append(drop, d...)
			if err := tx.DeleteFile(it, old.Name); err != nil {
				return nil, err
			}
			it.AddSize(-old.Size)
			namesChanged, contentChanged = true, true
			continue
		}
		f := &meta.File{
			ID: fileIDs[i], ItemID: it.ID, Name: c.Name, Size: c.Size, Version: 1,
			SHA256: c.SHA256, BackingID: p.backingID, Requested: c.Requested,
			Attr: meta.Attr{Mode: 0o644, Mtime: now, Ctime: now, Atime: &now},
		}
		if old != nil {
			f.ID, f.Version = old.ID, old.Version+1
			f.Attr.Mode, f.Attr.UID, f.Attr.GID = old.Attr.Mode, old.Attr.UID, old.Attr.GID
			f.Attr.Atime = old.Attr.Atime
		} else {
			namesChanged = true
		}
		attr := c.Attr
		if o, ok := over[c.Name]; ok && o.attr != nil {
			attr = o.attr
		}
		if attr != nil {
			f.Attr.Mode, f.Attr.UID, f.Attr.GID = attr.Mode, attr.UID, attr.GID
			if attr.Mtime != 0 {
				f.Attr.Mtime = attr.Mtime
			}
			if attr.Atime != nil {
				f.Attr.Atime = attr.Atime
			}
			if attr.Ctime != 0 {
				// The mount's: the time of the last change, which
				// may be well before its commit at close.
				f.Attr.Ctime = attr.Ctime
			}
		}
		k := meta.ContentKey{BackingID: p.backingID, SHA256: c.SHA256}
		if up != nil && up.inMemory {
			if _, err := tx.AddInlineContent(k, up.inline); err != nil {
				return nil, err
			}
		} else if c.Inline {
			b, err := tx.StagedBytes(cur.ID, c.Name)
			if err != nil || int64(len(b)) != c.Size {
				return nil, fmt.Errorf("file %q: staged bytes in the catalog: %w", c.Name, cmp.Or(err, meta.ErrCorrupt))
			}
			if _, err := tx.AddInlineContent(k, b); err != nil {
				return nil, err
			}
			if err := tx.DeleteStagedBytes(cur.ID, c.Name); err != nil {
				return nil, err
			}
		} else if _, err := tx.AddContentRef(k, 1, c.Size); err != nil {
			return nil, err
		}
		if old != nil {
			d, err := dropRef(tx, old)
			if err != nil {
				return nil, err
			}
			drop = append(drop, d...)
		}
		if err := tx.PutFile(it, f); err != nil {
			return nil, err
		}
		it.AddSize(f.Size)
		if old != nil {
			it.AddSize(-old.Size)
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
			return nil, err
		}
	}
	return drop, nil
}

// unchanged checks that a change of the session is still the one the
// commit was planned with: the client may re-add or remove it meanwhile.
// A sealed upload's record is not READY yet; its staging path, unique to
// the upload, identifies it.
func unchanged(tx *meta.Tx, s *meta.UpdateSession, c *meta.UpdateSessionFile, sealed bool) error {
	rec, err := tx.UpdateSessionFile(s.ID, c.Name)
	if err == nil && sealed && rec.Staging == c.Staging && !rec.Removed {
		return nil
	}
	if err != nil || sealed || rec.Staging != c.Staging || rec.Removed != c.Removed || rec.Inline != c.Inline || !bytes.Equal(rec.SHA256, c.SHA256) {
		return errorf(KindNotAllowedInCurrentState, "%s changed while completing", updateLabel(s.UUID))
	}
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

// A commit waits up to placeAgainAttempts × placeAgainWait for the
// leader to finish deleting a blob file it needs (a transaction, an
// unlink and a transaction: milliseconds).
const (
	placeAgainAttempts = 200
	placeAgainWait     = 25 * time.Millisecond
)

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// rollbackPlaced removes blobs a failed commit created; the caller holds
// their content locks and no reference to them was committed. It runs
// whether or not the caller is still there: a look-up stopped by ctx
// would read as "not referenced".
func (m *Manager) rollbackPlaced(ctx context.Context, root string, placed []meta.ContentKey) {
	ctx = context.WithoutCancel(ctx)
	if m.shared {
		m.freeContent(ctx, placed) // see dropUnreferenced
		return
	}
	for _, k := range placed {
		var referenced bool
		_ = m.store.View(ctx, func(tx *meta.Tx) error {
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
// cause. The item is untouched; changes carried to a successor survive.
//
// A session that was ended (cancel, expiry, item deleted) or whose changes
// were re-added or removed since the commit was planned is left alone: its
// staged bytes went with that, which is why placing them failed, and the
// caller gets NotAllowedInCurrentState as from any late complete.
//
// The verdict is the session's, not the caller's, and the caller may have
// rolled back what the commit placed: failing runs to the end whether or
// not the caller is still there (WithoutCancel), so the session is not
// left ACTIVE with its live state released.
func (m *Manager) failCommit(ctx context.Context, p *commitPlan, succ *successor, cause error) error {
	ctx = context.WithoutCancel(ctx)
	msg := "commit failed: " + cause.Error()
	moved, err := succ.moveStaging(m, p)
	if err == nil {
		err = m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
			cur, err := tx.UpdateSession(p.s.ID)
			if err != nil {
				return err
			}
			if State(cur.State) != StateActive {
				return &StateError{Session: updateLabel(cur.UUID), Op: p.op, State: State(cur.State)}
			}
			for i := range p.apply {
				if err := unchanged(tx, cur, &p.apply[i], p.sealed[p.apply[i].Name] != nil); err != nil {
					return err
				}
			}
			if err := m.endUpdateTx(tx, cur, opFail, msg); err != nil {
				return err
			}
			return succ.createTx(tx, m, p, moved)
		})
	}
	if err != nil && KindOf(err) == KindNotAllowedInCurrentState {
		succ.undoStaging(moved)
		return err
	}
	if err != nil {
		succ.undoStaging(moved)
		m.log.Warn("fail session after commit error", "session", p.s.UUID, "err", err)
	} else {
		succ.takeLive(m, p)
	}
	m.afterEnd(ctx, []endedSession{{p.s.ID, p.s.UUID}})
	return wrapf(KindError, cause, "cannot complete %s: %v", updateLabel(p.s.UUID), cause)
}

// failChanges fails the named changes of a session: the session goes to
// ERROR with cause, other changes carry on in a successor.
func (m *Manager) failChanges(ctx context.Context, id string, names []string, cause error) (string, error) {
	p, err := m.planCommit(ctx, id, names, opComplete)
	if err != nil {
		return "", err
	}
	succ, err := m.newSuccessor(ctx, p)
	if err != nil {
		return "", err
	}
	return succ.sessionID(), m.failCommit(ctx, p, succ, cause)
}
