package sessionmgr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"

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
	id, err := m.store.NextID()
	if err != nil {
		return "", err
	}
	var out string
	err = m.store.UpdateBuffered(func(tx *meta.Tx) error {
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
	now := m.now()
	s := &meta.UpdateSession{
		ID: id, UUID: newUUID(), ItemID: it.ID, ItemContentVersion: it.ContentVersion,
		State: string(StateActive), CreationTime: now, ExpirationTime: now + int64(m.timeout),
		Owner: owner,
	}
	for _, f := range []func() error{
		func() error { return tx.PutUpdateSession(s) },
		func() error { return tx.SetActiveUpdate(it.ID, s.ID) },
		func() error { return tx.PutUUID(s.UUID, meta.UpdateSessionObject, s.ID) },
		func() error { return tx.PutExpiry(expiryOf(meta.UpdateSessionKind, s.ID, s.ExpirationTime)) },
	} {
		if err := f(); err != nil {
			return nil, err
		}
	}
	return s, nil
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
	err := m.store.View(func(tx *meta.Tx) error {
		it, err := m.itemRec(tx, itemID)
		if err != nil {
			return err
		}
		n, err := tx.ActiveUpdate(it.ID)
		if errors.Is(err, meta.ErrNotFound) {
			return errorf(KindNotFound, "item %s has no active update session", itemLabel(tx, it))
		}
		if err != nil {
			return err
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
	err := m.store.View(func(tx *meta.Tx) error {
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
	return listSessions(m, itemID, (*meta.Tx).UpdateSessions,
		func(s *meta.UpdateSession) uint64 { return s.ItemID }, m.updateInfo)
}

// listSessions renders the sessions all returns, only those of one item if
// itemID is set (an unknown item is NotFound, as the API's list says).
func listSessions[R, I any](m *Manager, itemID string, all func(*meta.Tx) ([]R, error),
	itemOf func(*R) uint64, info func(*meta.Tx, *R) (*I, error)) ([]I, error) {
	out := []I{}
	err := m.store.View(func(tx *meta.Tx) error {
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

// UpdateUpdateSession changes the warning behaviour of an ACTIVE session.
func (m *Manager) UpdateUpdateSession(ctx context.Context, id string, spec UpdateSessionUpdateSpec) error {
	if err := m.refuseIfReadOnly("update update session"); err != nil {
		return err
	}
	return m.store.Update(func(tx *meta.Tx) error {
		s, err := m.updateRec(tx, id)
		if err != nil {
			return err
		}
		if _, err := next(updateTransitions, updateLabel(s.UUID), updateState(s), opUpdate); err != nil {
			return err
		}
		s.WarningBehavior, s.WarningBehaviorIgnore = nil, nil
		for _, w := range spec.WarningBehavior {
			s.WarningBehavior = append(s.WarningBehavior, w.Type)
			s.WarningBehaviorIgnore = append(s.WarningBehaviorIgnore, w.Ignored)
		}
		return m.extendTx(tx, meta.UpdateSessionKind, s.ID, &s.ExpirationTime, func() error { return tx.PutUpdateSession(s) })
	})
}

// KeepAliveUpdateSession pushes the session's expiration forward and,
// when progress is given, records the client's progress (0..100; values
// not above the current one are accepted and ignored, spec §12 #20).
func (m *Manager) KeepAliveUpdateSession(ctx context.Context, id string, progress *int64) error {
	if err := m.refuseIfReadOnly("keep update session alive"); err != nil {
		return err
	}
	if err := checkProgress(progress); err != nil {
		return err
	}
	return m.store.UpdateBuffered(func(tx *meta.Tx) error {
		s, err := m.updateRec(tx, id)
		if err != nil {
			return err
		}
		if _, err := next(updateTransitions, updateLabel(s.UUID), updateState(s), opKeepAlive); err != nil {
			return err
		}
		if progress != nil && *progress > s.ClientProgress {
			s.ClientProgress = *progress
		}
		return m.extendTx(tx, meta.UpdateSessionKind, s.ID, &s.ExpirationTime, func() error { return tx.PutUpdateSession(s) })
	})
}

func checkProgress(p *int64) error {
	if p != nil && (*p < 0 || *p > 100) {
		return errorf(KindInvalidArgument, "progress %d is outside 0..100", *p)
	}
	return nil
}

// CancelUpdateSession abandons an ACTIVE session: staged bytes are
// removed, the item is untouched.
func (m *Manager) CancelUpdateSession(ctx context.Context, id string) error {
	if err := m.refuseIfReadOnly("cancel update session"); err != nil {
		return err
	}
	return m.endUpdate(id, opCancel, "")
}

// FailUpdateSession records the client's failure: the session goes to
// ERROR with the message, staged bytes are removed, the item is untouched.
func (m *Manager) FailUpdateSession(ctx context.Context, id, message string) error {
	if err := m.refuseIfReadOnly("fail update session"); err != nil {
		return err
	}
	if message == "" {
		return errorf(KindInvalidArgument, "fail needs a client error message")
	}
	return m.endUpdate(id, opFail, message)
}

func (m *Manager) endUpdate(id, op, message string) error {
	var ended endedSession
	err := m.store.Update(func(tx *meta.Tx) error {
		s, err := m.updateRec(tx, id)
		if err != nil {
			return err
		}
		ended = endedSession{s.ID, s.UUID}
		return m.endUpdateTx(tx, s, op, message)
	})
	if err != nil {
		return err
	}
	m.afterEnd([]endedSession{ended})
	return nil
}

// DeleteUpdateSession removes a terminal session's record.
func (m *Manager) DeleteUpdateSession(ctx context.Context, id string) error {
	if err := m.refuseIfReadOnly("delete update session"); err != nil {
		return err
	}
	var ended endedSession
	err := m.store.Update(func(tx *meta.Tx) error {
		s, err := m.updateRec(tx, id)
		if err != nil {
			return err
		}
		if _, err := next(updateTransitions, updateLabel(s.UUID), updateState(s), opDelete); err != nil {
			return err
		}
		ended = endedSession{s.ID, s.UUID}
		return deleteUpdateTx(tx, s)
	})
	if err != nil {
		return err
	}
	m.afterEnd([]endedSession{ended})
	return nil
}

func deleteUpdateTx(tx *meta.Tx, s *meta.UpdateSession) error {
	if err := tx.DeleteExpiry(expiryOf(meta.UpdateSessionKind, s.ID, s.ExpirationTime)); err != nil {
		return err
	}
	if err := tx.DeleteUUID(s.UUID); err != nil {
		return err
	}
	return tx.DeleteUpdateSession(s.ID)
}

// endUpdateTx moves an ACTIVE session to the state op leads to, releases
// the item's lock and lets the record linger one more timeout so get can
// still explain what happened (spec §12 #4, #6).
func (m *Manager) endUpdateTx(tx *meta.Tx, s *meta.UpdateSession, op, message string) error {
	to, err := next(updateTransitions, updateLabel(s.UUID), updateState(s), op)
	if err != nil {
		return err
	}
	s.State = string(to)
	s.ErrorMessage = message
	s.CompletePending = false
	if cur, err := tx.ActiveUpdate(s.ItemID); err == nil && cur == s.ID {
		if err := tx.ClearActiveUpdate(s.ItemID); err != nil {
			return err
		}
	}
	if err := tx.DeleteExpiry(expiryOf(meta.UpdateSessionKind, s.ID, s.ExpirationTime)); err != nil {
		return err
	}
	s.ExpirationTime = m.now() + int64(m.timeout)
	if err := tx.PutExpiry(expiryOf(meta.UpdateSessionKind, s.ID, s.ExpirationTime)); err != nil {
		return err
	}
	return tx.PutUpdateSession(s)
}

// extendTx moves a session's expiration to now + timeout and stores the
// record with put.
func (m *Manager) extendTx(tx *meta.Tx, kind meta.SessionKind, id uint64, exp *int64, put func() error) error {
	if err := tx.DeleteExpiry(expiryOf(kind, id, *exp)); err != nil {
		return err
	}
	*exp = max(*exp, m.now()+int64(m.timeout))
	if err := tx.PutExpiry(expiryOf(kind, id, *exp)); err != nil {
		return err
	}
	return put()
}

func expiryOf(kind meta.SessionKind, id uint64, at int64) meta.ExpiryEntry {
	return meta.ExpiryEntry{At: at, Kind: kind, ID: id}
}

// endedSession names a session that left ACTIVE (or was deleted) in a
// committed transaction, for the clean-up that follows it.
type endedSession struct {
	id   uint64
	uuid string
}

// afterEnd releases what ended sessions held in memory and on disk: their
// readers start failing, their staged bytes are removed.
func (m *Manager) afterEnd(ended []endedSession) {
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
		m.removeStaging(e.uuid)
	}
}

// removeStaging removes an update session's staging directory. Backings
// are few, so look on each rather than remember which one it used.
func (m *Manager) removeStaging(sessionUUID string) {
	for _, root := range m.backingRoots() {
		d := stagingDir(root, sessionUUID)
		if err := os.RemoveAll(d); err != nil {
			m.log.Warn("remove staging", "dir", d, "err", err)
		}
	}
}

// backingRoots lists the roots of all storage backings. Backings are
// only ever added, so the list is read once and then kept up to date.
func (m *Manager) backingRoots() []string {
	m.mu.Lock()
	roots := m.roots
	m.mu.Unlock()
	if roots != nil {
		return roots
	}
	var backings []meta.Backing
	if err := m.store.View(func(tx *meta.Tx) (err error) {
		backings, err = tx.Backings()
		return err
	}); err != nil {
		m.log.Warn("list storage backings", "err", err)
		return nil
	}
	roots = []string{}
	for _, b := range backings {
		roots = append(roots, b.Root)
	}
	m.mu.Lock()
	m.roots = roots
	m.mu.Unlock()
	return roots
}

// rememberBacking adds a new backing's root to backingRoots.
func (m *Manager) rememberBacking(root string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.roots != nil && !slices.Contains(m.roots, root) {
		m.roots = append(slices.Clip(m.roots), root)
	}
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
		ID: s.UUID, LibraryItemContentVersion: fmtCounter(s.ItemContentVersion),
		ErrorMessage:    newMessage("com.vmware.content.updatesession.error", s.ErrorMessage),
		ClientProgress:  s.ClientProgress,
		State:           State(s.State),
		ExpirationTime:  nsTime(s.ExpirationTime),
		PreviewInfo:     PreviewInfo{State: "NOT_APPLICABLE"},
		WarningBehavior: []WarningBehavior{},
	}
	if it, err := tx.Item(s.ItemID); err == nil {
		out.LibraryItemID = it.UUID
	}
	for i, t := range s.WarningBehavior {
		out.WarningBehavior = append(out.WarningBehavior, WarningBehavior{Type: t, Ignored: s.WarningBehaviorIgnore[i]})
	}
	if out.State == StateActive {
		out.ExpirationTime = nsTime(m.expiresAt(s.ID, s.ExpirationTime))
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

// ---- update-session files (spec §7)

// AddFile adds a file to the session, or re-targets one with new content
// (a replace when the item already has it). For PUSH the client then
// streams the bytes through OpenUpload; for PULL the server starts
// fetching them from the source endpoint at once (pull.go). A re-add
// stops the name's running upload or pull.
func (m *Manager) AddFile(ctx context.Context, sessionID string, spec FileAddSpec) (*UpdateSessionFile, error) {
	if err := m.refuseIfReadOnly("add file to update session"); err != nil {
		return nil, err
	}
	if err := ValidateName("file", spec.Name); err != nil {
		return nil, err
	}
	var src *pullSource
	switch spec.SourceType {
	case SourcePush:
	case SourcePull:
		var err error
		if src, err = parsePullSource(spec.Name, spec.SourceEndpoint); err != nil {
			return nil, err
		}
	default:
		return nil, errorf(KindInvalidArgument, "file %q: source_type %q must be PUSH or PULL", spec.Name, spec.SourceType)
	}
	if spec.Size != nil && *spec.Size < 0 {
		return nil, errorf(KindInvalidArgument, "file %q: negative size %d", spec.Name, *spec.Size)
	}
	sum, err := normalizeChecksum(spec.ChecksumInfo)
	if err != nil {
		return nil, err
	}
	var stagingID uint64
	if src != nil {
		if stagingID, err = m.store.NextID(); err != nil {
			return nil, err
		}
	}
	var sid uint64
	var oldStaging string
	var rec *meta.UpdateSessionFile
	var uuid, owner string
	err = m.store.UpdateBuffered(func(tx *meta.Tx) error {
		s, err := m.updateRec(tx, sessionID)
		if err != nil {
			return err
		}
		owner = s.Owner
		if _, err := next(updateTransitions, updateLabel(s.UUID), updateState(s), opAddFile); err != nil {
			return err
		}
		sid, uuid = s.ID, s.UUID
		oldStaging = ""
		if old, err := tx.UpdateSessionFile(s.ID, spec.Name); err == nil {
			oldStaging = old.Staging
		}
		rec = &meta.UpdateSessionFile{
			SessionID: s.ID, Name: spec.Name, SourceType: spec.SourceType,
			ExpectedSize: spec.Size, Status: string(TransferWaiting),
		}
		if src != nil {
			root, err := m.sessionRoot(tx, s)
			if err != nil {
				return err
			}
			rec.Source = src.record()
			rec.Status = string(TransferTransferring)
			rec.Staging = filepath.Join(stagingDir(root, s.UUID), strconv.FormatUint(stagingID, 10))
		}
		if sum != nil {
			rec.Requested = &meta.Checksum{Algorithm: sum.Algorithm, Value: sum.Checksum}
		}
		if spec.Posix != nil {
			a := attrFromPosix(spec.Posix, 0, 0)
			rec.Attr = &a
		}
		if err := tx.PutUpdateSessionFile(rec); err != nil {
			return err
		}
		return m.extendTx(tx, meta.UpdateSessionKind, s.ID, &s.ExpirationTime, func() error { return tx.PutUpdateSession(s) })
	})
	if err == nil {
		err = m.syncFor(owner)
	}
	if err != nil {
		return nil, err
	}
	// A re-add invalidates what was staged for the name before.
	m.abortPulls(sid, spec.Name)
	m.discardUpload(sid, spec.Name)
	if oldStaging != "" {
		os.Remove(oldStaging)
	}
	if src != nil {
		m.startPull(sid, rec, src)
	}
	info := m.sessionFileInfo(sid, uuid, rec)
	return &info, nil
}

// GetSessionFile returns one file of the session's view. A name that is
// neither in the item nor added is an InvalidArgument (spec §7.5).
func (m *Manager) GetSessionFile(ctx context.Context, sessionID, name string) (*UpdateSessionFile, error) {
	files, err := m.ListSessionFiles(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	for i := range files {
		if files[i].Name == name {
			return &files[i], nil
		}
	}
	return nil, errorf(KindInvalidArgument, "file %q is not in %s", name, updateLabel(sessionID))
}

// ListSessionFiles returns the session's view: the item's files overlaid
// with the session's additions, without its removals.
func (m *Manager) ListSessionFiles(ctx context.Context, sessionID string) ([]UpdateSessionFile, error) {
	out := []UpdateSessionFile{}
	err := m.store.View(func(tx *meta.Tx) error {
		out = out[:0]
		s, err := m.updateRec(tx, sessionID)
		if err != nil {
			return err
		}
		changes, err := tx.UpdateSessionFiles(s.ID)
		if err != nil {
			return err
		}
		changed := map[string]*meta.UpdateSessionFile{}
		for i := range changes {
			changed[changes[i].Name] = &changes[i]
		}
		committed, err := tx.Files(s.ItemID)
		if err != nil {
			return err
		}
		for i := range committed {
			f := &committed[i]
			if _, ok := changed[f.Name]; ok {
				continue
			}
			size := f.Size
			out = append(out, UpdateSessionFile{
				Name: f.Name, SourceType: SourceNone, Size: &size, Status: TransferReady, KeepInStorage: true,
				ChecksumInfo: fileInfo(f).ChecksumInfo,
			})
		}
		for _, c := range changes {
			if !c.Removed {
				out = append(out, m.sessionFileInfo(s.ID, s.UUID, &c))
			}
		}
		return nil
	})
	sortBy(out, func(f UpdateSessionFile) string { return f.Name })
	return out, err
}

// RemoveSessionFile marks a file for removal at complete. Removing a file
// that was only added in this session drops the pending add (spec §12 #14).
func (m *Manager) RemoveSessionFile(ctx context.Context, sessionID, name string) error {
	if err := m.refuseIfReadOnly("remove file from update session"); err != nil {
		return err
	}
	var sid uint64
	var staging, owner string
	err := m.store.UpdateBuffered(func(tx *meta.Tx) error {
		staging = ""
		s, err := m.updateRec(tx, sessionID)
		if err != nil {
			return err
		}
		owner = s.Owner
		if _, err := next(updateTransitions, updateLabel(s.UUID), updateState(s), opRemoveFile); err != nil {
			return err
		}
		sid = s.ID
		_, errCommitted := tx.File(s.ItemID, name)
		inItem := errCommitted == nil
		if errCommitted != nil && !errors.Is(errCommitted, meta.ErrNotFound) {
			return errCommitted
		}
		pending, err := tx.UpdateSessionFile(s.ID, name)
		switch {
		case err == nil && pending.Removed:
			return errorf(KindInvalidArgument, "file %q is already removed in %s", name, updateLabel(s.UUID))
		case err == nil:
			staging = pending.Staging
		case !errors.Is(err, meta.ErrNotFound):
			return err
		case !inItem:
			return errorf(KindInvalidArgument, "file %q is not in %s", name, updateLabel(s.UUID))
		}
		if !inItem {
			err = tx.DeleteUpdateSessionFile(s.ID, name)
		} else {
			err = tx.PutUpdateSessionFile(&meta.UpdateSessionFile{SessionID: s.ID, Name: name, Removed: true})
		}
		if err != nil {
			return err
		}
		return m.extendTx(tx, meta.UpdateSessionKind, s.ID, &s.ExpirationTime, func() error { return tx.PutUpdateSession(s) })
	})
	if err == nil {
		err = m.syncFor(owner)
	}
	if err != nil {
		return err
	}
	m.abortPulls(sid, name)
	m.discardUpload(sid, name)
	if staging != "" {
		os.Remove(staging)
	}
	return nil
}

// ValidateUpdateSession reports files added but not (yet) received as
// missing, files whose transfer or validation failed as invalid, and, for
// OVF descriptors in the session's view, referenced files that are absent.
func (m *Manager) ValidateUpdateSession(ctx context.Context, sessionID string) (*ValidationResult, error) {
	// Validating is what a writer does before it completes; a read-only
	// home has no writer, and refuses it with the rest of the update
	// session's calls.
	if err := m.refuseIfReadOnly("validate update session"); err != nil {
		return nil, err
	}
	res := &ValidationResult{MissingFiles: []string{}, InvalidFiles: []ValidationError{}}
	var s *meta.UpdateSession
	err := m.store.View(func(tx *meta.Tx) error {
		var err error
		s, err = m.updateRec(tx, sessionID)
		if err != nil {
			return err
		}
		_, err = next(updateTransitions, updateLabel(s.UUID), updateState(s), opValidate)
		return err
	})
	if err != nil {
		return nil, err
	}
	files, err := m.ListSessionFiles(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for _, f := range files {
		present[f.Name] = true
	}
	for _, f := range files {
		switch f.Status {
		case TransferWaiting, TransferTransferring, TransferValidating:
			res.MissingFiles = append(res.MissingFiles, f.Name)
		case TransferError:
			msg := Message{ID: "com.vmware.content.updatesession.file.invalid", Args: []string{}}
			if f.ErrorMessage != nil {
				msg = *f.ErrorMessage
			}
			res.InvalidFiles = append(res.InvalidFiles, ValidationError{Name: f.Name, ErrorMessage: msg})
		}
	}
	for _, ref := range m.ovfReferences(s, files) {
		if !present[ref] && !slices.Contains(res.MissingFiles, ref) {
			res.MissingFiles = append(res.MissingFiles, ref)
		}
	}
	res.HasErrors = len(res.MissingFiles) > 0 || len(res.InvalidFiles) > 0
	m.touch(m.liveFor(s.ID))
	return res, nil
}

func (m *Manager) sessionFileInfo(sessionID uint64, sessionUUID string, c *meta.UpdateSessionFile) UpdateSessionFile {
	out := UpdateSessionFile{
		Name: c.Name, SourceType: c.SourceType, Status: TransferStatus(c.Status),
		BytesTransferred: m.liveTransferred(sessionID, c),
		ErrorMessage:     newMessage("com.vmware.content.updatesession.file.error", c.ErrorMessage),
		KeepInStorage:    true,
	}
	if m.liveUpload(sessionID, c.Name) != nil && out.Status == TransferWaiting {
		out.Status = TransferTransferring
	}
	if out.Status == TransferReady {
		size := c.Size
		out.Size = &size
	} else if c.ExpectedSize != nil {
		size := *c.ExpectedSize
		out.Size = &size
	}
	if c.Requested != nil {
		out.ChecksumInfo = &ChecksumInfo{Algorithm: c.Requested.Algorithm, Checksum: c.Requested.Value}
	}
	out.SourceEndpoint = endpointOf(c.Source)
	if m.endpoints != nil && c.SourceType == SourcePush {
		out.UploadEndpoint = &TransferEndpoint{URI: m.endpoints.UploadURI(sessionUUID, c.Name)}
	}
	return out
}

// sessionRoot is the root of the backing the session's item stores on.
func (m *Manager) sessionRoot(tx *meta.Tx, s *meta.UpdateSession) (string, error) {
	it, err := tx.Item(s.ItemID)
	if err != nil {
		return "", err
	}
	lib, err := tx.Library(it.LibraryID)
	if err != nil {
		return "", err
	}
	return m.backingRoot(tx, lib.BackingID)
}
