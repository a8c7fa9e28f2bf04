package sessionmgr

import (
	"context"
	"encoding/hex"
	"slices"

	"clfs/meta"
)

// Download sessions (spec §8). A session pins the item's files as they are
// at creation (spec §12 #12): it holds a reference on each blob, so a
// commit that replaces or removes a file does not take the bytes away from
// it. Pins are dropped when the session leaves ACTIVE; its readers then
// get errors.

func downloadLabel(uuid string) string { return "download session " + uuid }

// CreateDownloadSession starts a download session over the item's current
// content.
func (m *Manager) CreateDownloadSession(ctx context.Context, spec DownloadSessionCreateSpec, clientToken string) (string, error) {
	return m.createDownloadSession(ctx, spec, clientToken, "")
}

func (m *Manager) createDownloadSession(ctx context.Context, spec DownloadSessionCreateSpec, clientToken, owner string) (string, error) {
	return m.createDownloadSessionPinning(ctx, spec, clientToken, owner, false)
}

// createDownloadSessionPinning creates a download session that pins its
// item's files now, or, with onOpen, each file when it is first opened
// (OpenDownload): opening one file of a large item then costs one pin, not
// one per file. Such a session serves only the content version it began
// at: once the item has changed, opening a file not yet pinned fails
// with NotAllowedInCurrentState.
func (m *Manager) createDownloadSessionPinning(ctx context.Context, spec DownloadSessionCreateSpec, clientToken, owner string, onOpen bool) (string, error) {
	id, err := m.store.NextID(ctx)
	if err != nil {
		return "", err
	}
	var out string
	large := false
	err = m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		large = false
		prev, specHash, err := replayToken(tx, tokenDownload, clientToken, spec)
		if err != nil || prev != "" {
			out = prev
			return err
		}
		it, err := m.itemRec(tx, spec.LibraryItemID)
		if err != nil {
			return err
		}
		var files []meta.File
		if !onOpen {
			if files, err = tx.FirstFiles(it, pinBatch+1); err != nil {
				return err
			}
			if len(files) > pinBatch {
				out, large = "", true
				return nil // too many for one transaction: bigpin.go
			}
		}
		s := &meta.DownloadSession{SessionHeader: m.newSessionHeader(id, newUUID(), it, owner), Pinned: true, PinOnOpen: onOpen}
		for i := range files {
			if _, err := pinTx(tx, s, &files[i]); err != nil {
				return err
			}
		}
		out = s.UUID
		if err := downloadSessions.createTx(tx, s); err != nil {
			return err
		}
		return rememberToken(tx, tokenDownload, clientToken, specHash, s.UUID)
	})
	if err == nil && large {
		out, err = m.createLargeDownloadSession(ctx, spec, clientToken, owner)
	}
	if err == nil {
		err = m.syncFor(owner)
	}
	return out, err
}

// GetDownloadSession returns a download session's status.
func (m *Manager) GetDownloadSession(ctx context.Context, id string) (*DownloadSession, error) {
	var out *DownloadSession
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		s, err := m.downloadRec(tx, id)
		if err != nil {
			return err
		}
		out, err = m.downloadInfo(tx, s)
		return err
	})
	return out, err
}

// ListDownloadSessions lists download sessions, of one item if itemID is
// set.
func (m *Manager) ListDownloadSessions(ctx context.Context, itemID string) ([]DownloadSession, error) {
	shown := func(tx *meta.Tx) ([]meta.DownloadSession, error) {
		all, err := tx.DownloadSessions()
		return slices.DeleteFunc(all, func(s meta.DownloadSession) bool { return s.Pinning }), err
	}
	return listSessions(ctx, m, itemID, shown,
		func(s *meta.DownloadSession) uint64 { return s.ItemID }, m.downloadInfo)
}

// KeepAliveDownloadSession extends an ACTIVE session and records progress.
func (m *Manager) KeepAliveDownloadSession(ctx context.Context, id string, progress *int64) error {
	return downloadSessions.keepAlive(ctx, m, id, progress)
}

// CancelDownloadSession ends an ACTIVE session; its readers get errors.
func (m *Manager) CancelDownloadSession(ctx context.Context, id string) error {
	return downloadSessions.end(ctx, m, id, opCancel, "")
}

// FailDownloadSession records the client's failure.
func (m *Manager) FailDownloadSession(ctx context.Context, id, message string) error {
	return downloadSessions.fail(ctx, m, id, message)
}

// DeleteDownloadSession removes a session in any state (spec §8.3).
func (m *Manager) DeleteDownloadSession(ctx context.Context, id string) error {
	return downloadSessions.delete(ctx, m, id)
}

func deleteDownloadTx(tx *meta.Tx, s *meta.DownloadSession) ([]meta.ContentKey, error) {
	drop, err := unpin(tx, s)
	if err != nil {
		return nil, err
	}
	if s.Unpinning { // its files stay for the sweep, which the record tells
		if err := tx.PutDownloadSession(s); err != nil {
			return nil, err
		}
	}
	return drop, deleteSessionTx(tx, s)
}

// endDownloadTx moves an ACTIVE session to the state op leads to and drops
// its pins.
func (m *Manager) endDownloadTx(tx *meta.Tx, s *meta.DownloadSession, op, message string) ([]meta.ContentKey, error) {
	to, err := downloadTransition(s, op)
	if err != nil {
		return nil, err
	}
	drop, err := unpin(tx, s)
	if err != nil {
		return nil, err
	}
	return drop, m.endTx(tx, s, to, message)
}

// pinBatch is the most pins one transaction takes or drops: two keys
// each, well within etcd's 128.
const pinBatch = sweepFiles

// unpin drops a session's pins and returns the blobs no one references
// any more. A session with more pins than one transaction drops is marked
// Unpinning (the caller stores it) and listed hidden: the sweep drops
// them, pinBatch at a time (sweepPins), moments later.
func unpin(tx *meta.Tx, s *meta.DownloadSession) ([]meta.ContentKey, error) {
	if !s.Pinned {
		return nil, nil
	}
	s.Pinned = false
	n, err := tx.CountDownloadSessionFiles(s.ID)
	if err != nil {
		return nil, err
	}
	if n > pinBatch {
		s.Unpinning = true
		return nil, tx.HidePins(s.ID)
	}
	files, err := tx.DownloadSessionFiles(s.ID)
	if err != nil {
		return nil, err
	}
	return unpinFiles(tx, files, false)
}

// unpinFiles drops the references of pins not dropped yet and, with
// mark (a sweep that goes on in other transactions), marks them dropped.
func unpinFiles(tx *meta.Tx, files []meta.DownloadSessionFile, mark bool) ([]meta.ContentKey, error) {
	var drop []meta.ContentKey
	for i := range files {
		f := &files[i]
		if f.Unpinned {
			continue
		}
		k := meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256}
		refs, err := tx.AddContentRef(k, -1, 0)
		if err != nil {
			return nil, err
		}
		if refs == 0 {
			drop = append(drop, k)
		}
		if mark {
			f.Unpinned = true
			if err := tx.PutDownloadSessionFile(f); err != nil {
				return nil, err
			}
		}
	}
	return drop, nil
}

// ListDownloadFiles lists the pinned files of a session.
func (m *Manager) ListDownloadFiles(ctx context.Context, id string) ([]DownloadSessionFile, error) {
	var out []DownloadSessionFile
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		out = nil // the body may run again (meta.Store.View)
		s, err := m.downloadRec(tx, id)
		if err != nil {
			return err
		}
		files, err := tx.DownloadSessionFiles(s.ID)
		if err != nil {
			return err
		}
		out = make([]DownloadSessionFile, 0, len(files))
		for i := range files {
			f, err := m.downloadFileInfo(tx, s, &files[i])
			if err != nil {
				return err
			}
			out = append(out, f)
		}
		return nil
	})
	return out, err
}

// GetDownloadFile returns one pinned file; an unknown name is an
// InvalidArgument (spec §8.4).
func (m *Manager) GetDownloadFile(ctx context.Context, id, name string) (*DownloadSessionFile, error) {
	var out DownloadSessionFile
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		s, f, err := m.downloadFileRec(tx, id, name)
		if err != nil {
			return err
		}
		out, err = m.downloadFileInfo(tx, s, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// PrepareDownloadFile makes a file downloadable. Content is already on
// local disk, so it is PREPARED at once (spec §12 #28); clients poll anyway.
func (m *Manager) PrepareDownloadFile(ctx context.Context, id, name, endpointType string) (*DownloadSessionFile, error) {
	switch endpointType {
	case "", EndpointHTTPS, EndpointDirect:
	default:
		return nil, errorf(KindInvalidArgument, "endpoint type %q must be HTTPS or DIRECT", endpointType)
	}
	var out DownloadSessionFile
	err := m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		s, f, err := m.downloadFileRec(tx, id, name)
		if err != nil {
			return err
		}
		if err := checkDownload(s, opPrepare); err != nil {
			return err
		}
		if err := setPrepareStatus(f, Prepared); err != nil {
			return err
		}
		if err := tx.PutDownloadSessionFile(f); err != nil {
			return err
		}
		if err := m.extendTx(tx, s); err != nil {
			return err
		}
		out, err = m.downloadFileInfo(tx, s, f)
		if endpointType == EndpointDirect && out.DownloadEndpoint != nil {
			root, err := m.backingRoot(tx, f.BackingID)
			if err != nil {
				return err
			}
			path, err := m.blobFile(tx, root, meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256})
			if err != nil {
				return err
			}
			out.DownloadEndpoint = &TransferEndpoint{URI: fileURI(path)}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func (m *Manager) downloadRec(tx *meta.Tx, id string) (*meta.DownloadSession, error) {
	n, err := resolve(tx, meta.DownloadSessionObject, "download session", id)
	if err != nil {
		return nil, err
	}
	s, err := tx.DownloadSession(n)
	if err == nil && s.Pinning {
		return nil, errorf(KindNotFound, "download session %s not found", id)
	}
	return s, err
}

// pinTx takes a reference on a committed file's content for the session
// and records it as the session's file.
func pinTx(tx *meta.Tx, s *meta.DownloadSession, f *meta.File) (*meta.DownloadSessionFile, error) {
	if _, err := tx.AddContentRef(meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256}, 1, f.Size); err != nil {
		return nil, err
	}
	df := &meta.DownloadSessionFile{
		SessionID: s.ID, Name: f.Name, Size: f.Size, Version: f.Version,
		SHA256: f.SHA256, BackingID: f.BackingID, FileID: f.ID, Attr: f.Attr,
	}
	if err := setPrepareStatus(df, PrepareUnprepared); err != nil {
		return nil, err
	}
	return df, tx.PutDownloadSessionFile(df)
}

// pinOnOpenTx pins a file of a PinOnOpen session that is opened for the
// first time, if the item is still at the session's content version.
func (m *Manager) pinOnOpenTx(tx *meta.Tx, s *meta.DownloadSession, name string) (*meta.DownloadSessionFile, error) {
	it, err := tx.Item(s.ItemID)
	if err != nil {
		return nil, err
	}
	if it.ContentVersion != s.ItemContentVersion {
		return nil, errorf(KindNotAllowedInCurrentState, "%s serves content version %d of its item, which is now at %d", downloadLabel(s.UUID), s.ItemContentVersion, it.ContentVersion)
	}
	f, err := tx.File(it, name)
	if err != nil {
		return nil, notFoundAs(err, KindInvalidArgument, "file %q is not in %s", name, downloadLabel(s.UUID))
	}
	return pinTx(tx, s, f)
}

func (m *Manager) downloadFileRec(tx *meta.Tx, id, name string) (*meta.DownloadSession, *meta.DownloadSessionFile, error) {
	s, err := m.downloadRec(tx, id)
	if err != nil {
		return nil, nil, err
	}
	f, err := tx.DownloadSessionFile(s.ID, name)
	if err != nil {
		return nil, nil, notFoundAs(err, KindInvalidArgument, "file %q is not in %s", name, downloadLabel(s.UUID))
	}
	return s, f, nil
}

func (m *Manager) downloadInfo(tx *meta.Tx, s *meta.DownloadSession) (*DownloadSession, error) {
	out := &DownloadSession{SessionHeader: m.headerInfo(tx, s, "com.vmware.content.downloadsession.error")}
	files, err := tx.DownloadSessionFiles(s.ID)
	if err != nil {
		return nil, err
	}
	for i := range files {
		out.BytesTransferred += m.liveDownloaded(s.ID, &files[i])
	}
	return out, nil
}

func (m *Manager) downloadFileInfo(tx *meta.Tx, s *meta.DownloadSession, f *meta.DownloadSessionFile) (DownloadSessionFile, error) {
	out := DownloadSessionFile{
		Name: f.Name, Size: f.Size, Status: PrepareStatus(f.Status),
		BytesTransferred: m.liveDownloaded(s.ID, f),
		ErrorMessage:     newMessage("com.vmware.content.downloadsession.file.error", f.ErrorMessage),
		Version:          fmtCounter(f.Version),
		ChecksumInfo:     &ChecksumInfo{Algorithm: AlgSHA256, Checksum: hex.EncodeToString(f.SHA256)},
	}
	if out.Status == Prepared && State(s.State) == StateActive {
		if m.endpoints != nil {
			out.DownloadEndpoint = &TransferEndpoint{URI: m.endpoints.DownloadURI(s.UUID, f.Name)}
		} else {
			root, err := m.backingRoot(tx, f.BackingID)
			if err != nil {
				return out, err
			}
			path, err := m.blobFile(tx, root, meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256})
			if err != nil {
				return out, err
			}
			out.DownloadEndpoint = &TransferEndpoint{URI: fileURI(path)}
		}
	}
	return out, nil
}

// liveDownloaded is a file's bytes_transferred including bytes served by
// readers that are still open.
func (m *Manager) liveDownloaded(sessionID uint64, f *meta.DownloadSessionFile) int64 {
	ls := m.liveIfAny(sessionID)
	if ls == nil {
		return f.BytesTransferred
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return f.BytesTransferred + ls.downloading[f.Name]
}
