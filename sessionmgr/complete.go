package sessionmgr

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	sid, deferred, err := m.deferComplete(id)
	if err != nil {
		return err
	}
	if deferred {
		// A pull that ended before the mark was committed left the
		// commit to us.
		m.finishPendingComplete(sid)
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
func (m *Manager) deferComplete(id string) (sessionID uint64, deferred bool, err error) {
	err = m.store.UpdateBuffered(func(tx *meta.Tx) error {
		deferred = false
		s, err := m.updateRec(tx, id)
		if err != nil {
			return err
		}
		sessionID = s.ID
		if _, err := next(updateTransitions, updateLabel(s.UUID), updateState(s), opComplete); err != nil {
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
		return m.extendTx(tx, meta.UpdateSessionKind, s.ID, &s.ExpirationTime, func() error { return tx.PutUpdateSession(s) })
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
func (m *Manager) finishPendingComplete(sessionID uint64) {
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	var s *meta.UpdateSession
	var failed *meta.UpdateSessionFile
	running := false
	err := m.store.View(func(tx *meta.Tx) error {
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
		m.failPendingComplete(sessionID, "cannot complete: "+msg)
		return
	}
	if running {
		return
	}
	if _, err := m.commit(context.Background(), s.UUID, nil, nil, opCommit); err != nil {
		// A server-side failure has put the session in ERROR already;
		// a session cancelled meanwhile is left as it is.
		m.failPendingComplete(sessionID, "cannot complete: "+messageOf(err))
	}
}

// failPendingComplete puts a session that is still completing in ERROR.
func (m *Manager) failPendingComplete(sessionID uint64, msg string) {
	var ended []endedSession
	err := m.store.Update(func(tx *meta.Tx) error {
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
	m.afterEnd(ended)
}

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
	p, err := m.planCommit(id, only, op)
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
		c.Status, c.ErrorMessage = string(TransferReady), ""
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
		} else if fileIDs[i], err = m.store.NextID(); err != nil {
			return "", err
		}
	}
	succ, err := m.newSuccessor(p)
	if err != nil {
		return "", err
	}
	if verdict != nil {
		return "", m.failCommit(p, succ, verdict)
	}

	unlock := m.lockContent(shas)
	defer func() { unlock() }()
	var placed []meta.ContentKey // blobs this call created, for roll-back
	for _, c := range p.apply {
		if c.Removed || c.Inline || (p.sealed[c.Name] != nil && p.sealed[c.Name].inMemory) {
			continue // inline bytes move inside the catalog transaction
		}
		created, err := placeContent(p.root, c.Staging, c.SHA256)
		if created {
			placed = append(placed, meta.ContentKey{BackingID: p.backingID, SHA256: c.SHA256})
		}
		if err != nil {
			m.rollbackPlaced(p.root, placed)
			unlock()
			unlock = func() {}
			return "", m.failCommit(p, succ, fmt.Errorf("file %q: %w", c.Name, err))
		}
	}
	moved, err := succ.moveStaging(m, p)
	if err != nil {
		m.rollbackPlaced(p.root, placed)
		return "", err
	}

	var drop []meta.ContentKey
	err = m.store.Update(func(tx *meta.Tx) error {
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
	if err != nil {
		succ.undoStaging(moved)
		m.rollbackPlaced(p.root, placed)
		if KindOf(err) == KindError {
			unlock()
			unlock = func() {}
			return "", m.failCommit(p, succ, err)
		}
		return "", err
	}
	unlock()
	unlock = func() {}
	succ.takeLive(m, p)
	m.afterEnd([]endedSession{{p.s.ID, p.s.UUID}})
	m.dropUnreferenced(drop)
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

func (m *Manager) planCommit(id string, only []string, op string) (*commitPlan, error) {
	p := &commitPlan{op: op}
	err := m.store.View(func(tx *meta.Tx) error {
		var err error
		if p.s, err = m.updateRec(tx, id); err != nil {
			return err
		}
		if _, err := next(updateTransitions, updateLabel(p.s.UUID), updateState(p.s), op); err != nil {
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
	status := TransferStatus(c.Status)
	if status == TransferWaiting && live {
		status = TransferTransferring
	}
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
	if _, err := next(updateTransitions, updateLabel(cur.UUID), updateState(cur), p.op); err != nil {
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
		old, err := tx.File(it.ID, c.Name)
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
			if err := tx.DeleteFile(it.ID, old.Name); err != nil {
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
		if err := tx.PutFile(f); err != nil {
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
// cause. The item is untouched; changes carried to a successor survive.
//
// A session that was ended (cancel, expiry, item deleted) or whose changes
// were re-added or removed since the commit was planned is left alone: its
// staged bytes went with that, which is why placing them failed, and the
// caller gets NotAllowedInCurrentState as from any late complete.
func (m *Manager) failCommit(p *commitPlan, succ *successor, cause error) error {
	msg := "commit failed: " + cause.Error()
	moved, err := succ.moveStaging(m, p)
	if err == nil {
		err = m.store.UpdateBuffered(func(tx *meta.Tx) error {
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
	m.afterEnd([]endedSession{{p.s.ID, p.s.UUID}})
	return wrapf(KindError, cause, "cannot complete %s: %v", updateLabel(p.s.UUID), cause)
}

// successor is the session that carries on with the changes a partial
// commit leaves out. A nil *successor means there is none.
type successor struct {
	id   uint64
	uuid string
}

func (s *successor) sessionID() string {
	if s == nil {
		return ""
	}
	return s.uuid
}

func (m *Manager) newSuccessor(p *commitPlan) (*successor, error) {
	if len(p.carry) == 0 {
		return nil, nil
	}
	id, err := m.store.NextID()
	if err != nil {
		return nil, err
	}
	return &successor{id: id, uuid: newUUID()}, nil
}

// movedStaging maps a carried file's old staging path to its new one.
type movedStaging map[string]movedFile

type movedFile struct {
	to string
	sf *StagedFile // the live upload whose path moved with it, if any
}

// moveStaging moves the carried files' staged bytes into the successor's
// staging directory, so that the ending session's directory can go. Bytes
// staged in memory or in the catalog have no file to move; their path
// moves all the same, so that a later spill lands in the successor's
// directory.
func (s *successor) moveStaging(m *Manager, p *commitPlan) (movedStaging, error) {
	if s == nil {
		return nil, nil
	}
	moved := movedStaging{}
	dir := stagingDir(p.root, s.uuid)
	for _, c := range p.carry {
		if c.Staging == "" {
			continue
		}
		to := filepath.Join(dir, filepath.Base(c.Staging))
		sf := m.liveUpload(p.s.ID, c.Name)
		if sf != nil {
			sf.mu.Lock() // no spill while the path moves
		}
		err := moveFile(c.Staging, to)
		if err == nil && sf != nil {
			sf.path = to
		}
		if sf != nil {
			sf.mu.Unlock()
		}
		if err != nil {
			s.undoStaging(moved)
			return nil, storageErr("move staging", err)
		}
		moved[c.Staging] = movedFile{to: to, sf: sf}
	}
	return moved, nil
}

// moveFile renames from to to, creating to's directory if needed; a from
// that does not exist is nothing to move.
func moveFile(from, to string) error {
	err := os.Rename(from, to)
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if _, serr := os.Lstat(from); errors.Is(serr, os.ErrNotExist) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	return os.Rename(from, to)
}

func (s *successor) undoStaging(moved movedStaging) {
	for from, mv := range moved {
		if mv.sf != nil {
			mv.sf.mu.Lock()
		}
		os.Rename(mv.to, from)
		if mv.sf != nil {
			mv.sf.path = from
			mv.sf.mu.Unlock()
		}
	}
}

// createTx creates the successor with the carried changes and hands it the
// item's lock; the ending session has already released it.
func (s *successor) createTx(tx *meta.Tx, m *Manager, p *commitPlan, moved movedStaging) error {
	if s == nil {
		return nil
	}
	it, err := tx.Item(p.s.ItemID)
	if err != nil {
		return err
	}
	now := m.now()
	rec := &meta.UpdateSession{
		ID: s.id, UUID: s.uuid, ItemID: it.ID, ItemContentVersion: it.ContentVersion,
		State: string(StateActive), CreationTime: now, ExpirationTime: now + int64(m.timeout),
		Owner: p.s.Owner, WarningBehavior: p.s.WarningBehavior, WarningBehaviorIgnore: p.s.WarningBehaviorIgnore,
	}
	for _, c := range p.carry {
		var inline []byte
		if c.Inline {
			var err error
			if inline, err = tx.StagedBytes(p.s.ID, c.Name); err != nil {
				return fmt.Errorf("file %q: staged bytes in the catalog: %w", c.Name, err)
			}
		}
		if err := tx.DeleteUpdateSessionFile(p.s.ID, c.Name); err != nil {
			return err
		}
		c.SessionID = s.id
		if mv, ok := moved[c.Staging]; ok {
			c.Staging = mv.to
		}
		if inline != nil {
			if err := tx.PutStagedBytes(s.id, c.Name, inline); err != nil {
				return err
			}
		}
		if err := tx.PutUpdateSessionFile(&c); err != nil {
			return err
		}
	}
	for _, f := range []func() error{
		func() error { return tx.PutUpdateSession(rec) },
		func() error { return tx.SetActiveUpdate(it.ID, rec.ID) },
		func() error { return tx.PutUUID(rec.UUID, meta.UpdateSessionObject, rec.ID) },
		func() error { return tx.PutExpiry(expiryOf(meta.UpdateSessionKind, rec.ID, rec.ExpirationTime)) },
	} {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// takeLive moves the carried files' open staged files to the successor.
func (s *successor) takeLive(m *Manager, p *commitPlan) {
	if s == nil {
		return
	}
	next := m.liveFor(s.id)
	m.mu.Lock()
	prev := m.live[p.s.ID]
	var moving []*StagedFile
	if prev != nil {
		for _, c := range p.carry {
			if sf := prev.uploads[c.Name]; sf != nil {
				delete(prev.uploads, c.Name)
				next.uploads[c.Name] = sf
				moving = append(moving, sf)
			}
		}
	}
	m.mu.Unlock()
	for _, sf := range moving {
		sf.mu.Lock()
		n := int32(sf.opens)
		sf.sessionID, sf.ls = s.id, next
		sf.mu.Unlock()
		prev.handles.Add(-n)
		next.handles.Add(n)
	}
	m.touch(next)
}
