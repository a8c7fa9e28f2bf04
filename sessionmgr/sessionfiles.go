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

// Files of an update session (spec §7). The session's view is the item's
// committed files overlaid with the session's changes: files added (new or
// replacing) and files removed.

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
		if stagingID, err = m.store.NextID(ctx); err != nil {
			return nil, err
		}
	}
	var sid uint64
	var oldStaging string
	var rec *meta.UpdateSessionFile
	var uuid, owner string
	err = m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		s, err := m.updateRec(tx, sessionID)
		if err != nil {
			return err
		}
		owner = s.Owner
		if err := checkUpdate(s, opAddFile); err != nil {
			return err
		}
		sid, uuid = s.ID, s.UUID
		oldStaging = ""
		if old, err := tx.UpdateSessionFile(s.ID, spec.Name); err == nil {
			oldStaging = old.Staging
		}
		rec = &meta.UpdateSessionFile{
			SessionID: s.ID, Name: spec.Name, SourceType: spec.SourceType,
			ExpectedSize: spec.Size,
		}
		added := TransferWaiting
		if src != nil {
			root, err := m.sessionRoot(tx, s)
			if err != nil {
				return err
			}
			rec.Source = src.record()
			added = TransferTransferring
			rec.Staging = filepath.Join(stagingDir(root, s.UUID), strconv.FormatUint(stagingID, 10))
		}
		if err := setTransferStatus(rec, added); err != nil {
			return err
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
		return m.extendTx(tx, s)
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
		m.startPull(ctx, sid, rec, src)
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
	err := m.store.View(ctx, func(tx *meta.Tx) error {
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
		it, err := tx.Item(s.ItemID)
		if err != nil {
			return err
		}
		committed, err := tx.Files(it)
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
	err := m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		staging = ""
		s, err := m.updateRec(tx, sessionID)
		if err != nil {
			return err
		}
		owner = s.Owner
		if err := checkUpdate(s, opRemoveFile); err != nil {
			return err
		}
		sid = s.ID
		it, err := tx.Item(s.ItemID)
		if err != nil {
			return err
		}
		_, errCommitted := tx.File(it, name)
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
		return m.extendTx(tx, s)
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
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		var err error
		s, err = m.updateRec(tx, sessionID)
		if err != nil {
			return err
		}
		err = checkUpdate(s, opValidate)
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
	for _, ref := range m.ovfReferences(ctx, s, files) {
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
		Name: c.Name, SourceType: c.SourceType,
		Status:           shownTransferStatus(c, m.liveUpload(sessionID, c.Name) != nil),
		BytesTransferred: m.liveTransferred(sessionID, c),
		ErrorMessage:     newMessage("com.vmware.content.updatesession.file.error", c.ErrorMessage),
		KeepInStorage:    true,
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
