package sessionmgr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

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
	id, err := m.store.NextID()
	if err != nil {
		return "", err
	}
	var out string
	err = m.store.UpdateBuffered(func(tx *meta.Tx) error {
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
			if files, err = tx.Files(it.ID); err != nil {
				return err
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
	if err == nil {
		err = m.syncFor(owner)
	}
	return out, err
}

// GetDownloadSession returns a download session's status.
func (m *Manager) GetDownloadSession(ctx context.Context, id string) (*DownloadSession, error) {
	var out *DownloadSession
	err := m.store.View(func(tx *meta.Tx) error {
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
	return listSessions(m, itemID, (*meta.Tx).DownloadSessions,
		func(s *meta.DownloadSession) uint64 { return s.ItemID }, m.downloadInfo)
}

// KeepAliveDownloadSession extends an ACTIVE session and records progress.
func (m *Manager) KeepAliveDownloadSession(ctx context.Context, id string, progress *int64) error {
	return downloadSessions.keepAlive(m, id, progress)
}

// CancelDownloadSession ends an ACTIVE session; its readers get errors.
func (m *Manager) CancelDownloadSession(ctx context.Context, id string) error {
	return downloadSessions.end(m, id, opCancel, "")
}

// FailDownloadSession records the client's failure.
func (m *Manager) FailDownloadSession(ctx context.Context, id, message string) error {
	return downloadSessions.fail(m, id, message)
}

// DeleteDownloadSession removes a session in any state (spec §8.3).
func (m *Manager) DeleteDownloadSession(ctx context.Context, id string) error {
	return downloadSessions.delete(m, id)
}

func deleteDownloadTx(tx *meta.Tx, s *meta.DownloadSession) ([]meta.ContentKey, error) {
	drop, err := unpin(tx, s)
	if err != nil {
		return nil, err
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

func unpin(tx *meta.Tx, s *meta.DownloadSession) ([]meta.ContentKey, error) {
	if !s.Pinned {
		return nil, nil
	}
	s.Pinned = false
	files, err := tx.DownloadSessionFiles(s.ID)
	if err != nil {
		return nil, err
	}
	var drop []meta.ContentKey
	for _, f := range files {
		k := meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256}
		refs, err := tx.AddContentRef(k, -1, 0)
		if err != nil {
			return nil, err
		}
		if refs == 0 {
			drop = append(drop, k)
		}
	}
	return drop, nil
}

// ListDownloadFiles lists the pinned files of a session.
func (m *Manager) ListDownloadFiles(ctx context.Context, id string) ([]DownloadSessionFile, error) {
	var out []DownloadSessionFile
	err := m.store.View(func(tx *meta.Tx) error {
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
	err := m.store.View(func(tx *meta.Tx) error {
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
	err := m.store.UpdateBuffered(func(tx *meta.Tx) error {
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
	return tx.DownloadSession(n)
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
	f, err := tx.File(it.ID, name)
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

// DownloadReader reads one file of a download session: exactly the content
// pinned when the session was created, whatever commits since.
type DownloadReader struct {
	m         *Manager
	ls        *liveSession
	sessionID uint64
	label     string
	name      string
	size      int64
	f         *os.File // the blob, or nil for inline content
	inline    []byte
	entry     FileEntry

	served  atomic.Int64
	closeMu sync.Once

	raMu     sync.Mutex
	raNext   int64 // where a sequential reader reads next
	raIssued int64 // readahead has been asked for up to here

	// Stored content is checked against its SHA-256 as it is read in
	// order: a reader that reaches the end of a file whose blob was
	// damaged behind clfs's back gets ErrContentCorrupt for the last
	// bytes, not a silent success. Hashing runs on the pipe's goroutine,
	// beside the disk reads; only the last read waits for it. Readers
	// of part of a file are not checked (that would cost a full read).
	sha      []byte
	verifyMu sync.Mutex
	pipe     *hashPipe // GUARDED_BY(verifyMu); nil once checked (or inline)
	hashed   int64     // GUARDED_BY(verifyMu); bytes hashed so far, from 0
	counted  int64     // GUARDED_BY(verifyMu); bytes served, in any order
	damaged  error     // GUARDED_BY(verifyMu); what the check found
}

// readaheadWindow is how far ahead of a sequential reader the blob is
// asked into the page cache. A mount's read waits for the disk once per
// request, with nothing in flight behind it; reading ahead keeps the disk
// busy while the kernel and the reader move the previous chunk.
const readaheadWindow = 8 << 20

// readAhead starts the kernel reading the blob past a sequential read.
func (r *DownloadReader) readAhead(off int64, n int) {
	r.raMu.Lock()
	defer r.raMu.Unlock()
	sequential := off == r.raNext
	r.raNext = off + int64(n)
	if !sequential || r.raNext+readaheadWindow/2 < r.raIssued || r.raIssued >= r.size {
		return
	}
	from := max(r.raIssued, r.raNext)
	// A hint: a failure only means no readahead.
	_ = unix.Fadvise(int(r.f.Fd()), from, readaheadWindow, unix.FADV_WILLNEED)
	r.raIssued = from + readaheadWindow
}

// OpenDownload opens a pinned file for reading. The file becomes PREPARED
// if it was not yet.
func (m *Manager) OpenDownload(ctx context.Context, id, name string) (*DownloadReader, error) {
	var path string
	var inline []byte
	isInline := false
	var s *meta.DownloadSession
	var f *meta.DownloadSessionFile
	err := m.store.UpdateBuffered(func(tx *meta.Tx) error {
		var err error
		if s, err = m.downloadRec(tx, id); err != nil {
			return err
		}
		if err := checkDownload(s, opTransfer); err != nil {
			return err
		}
		f, err = tx.DownloadSessionFile(s.ID, name)
		switch {
		case errors.Is(err, meta.ErrNotFound) && s.PinOnOpen:
			if f, err = m.pinOnOpenTx(tx, s, name); err != nil {
				return err
			}
		case errors.Is(err, meta.ErrNotFound):
			return errorf(KindInvalidArgument, "file %q is not in %s", name, downloadLabel(s.UUID))
		case err != nil:
			return err
		}
		inline, err = tx.InlineContent(meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256})
		switch {
		case err == nil:
			isInline = true
		case !errors.Is(err, meta.ErrNotFound):
			return err
		}
		root, err := m.backingRoot(tx, f.BackingID)
		if err != nil {
			return err
		}
		path = contentPath(root, f.SHA256)
		if f.Status != string(Prepared) {
			if err := setPrepareStatus(f, Prepared); err != nil {
				return err
			}
			return tx.PutDownloadSessionFile(f)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var file *os.File
	if !isInline {
		if file, err = os.Open(path); err != nil {
			m.log.Error("open stored content", "session", s.UUID, "file", name, "path", path, "err", err)
			return nil, wrapf(KindError, ErrContentCorrupt, "file %q of %s: stored content is missing: %v", name, downloadLabel(s.UUID), err)
		}
		if st, err := file.Stat(); err != nil || st.Size() != f.Size {
			file.Close()
			size := int64(-1)
			if err == nil {
				size = st.Size()
			}
			m.log.Error("stored content damaged", "session", s.UUID, "file", name, "path", path, "size", size, "want", f.Size, "err", err)
			return nil, wrapf(KindError, ErrContentCorrupt, "file %q of %s: stored content %s is %d bytes, want %d", name, downloadLabel(s.UUID), path, size, f.Size)
		}
	} else if sum := sha256.Sum256(inline); int64(len(inline)) != f.Size || !bytes.Equal(sum[:], f.SHA256) {
		// Small enough to check whole, at once.
		m.log.Error("stored content damaged", "session", s.UUID, "file", name, "inline", true, "size", len(inline), "want", f.Size, "sha256", hex.EncodeToString(sum[:]))
		return nil, wrapf(KindError, ErrContentCorrupt, "file %q of %s: inline content is %d bytes with sha256 %x, want %d bytes, %x", name, downloadLabel(s.UUID), len(inline), sum, f.Size, f.SHA256)
	}
	ls := m.liveFor(s.ID)
	ls.handles.Add(1)
	m.touch(ls)
	entry := FileEntry{
		Name: f.Name, Size: f.Size, Version: fmtCounter(f.Version),
		SHA256: hex.EncodeToString(f.SHA256), Posix: posixOf(f.FileID, f.Attr),
	}
	r := &DownloadReader{m: m, ls: ls, sessionID: s.ID, label: downloadLabel(s.UUID), name: name, size: f.Size, f: file, inline: inline, entry: entry, sha: f.SHA256}
	if file != nil {
		r.pipe = newHashPipe(nil, nil)
	}
	return r, nil
}

// Entry is the file as pinned: what fstat on a read handle shows, however
// the file changes meanwhile.
func (r *DownloadReader) Entry() FileEntry { return r.entry }

// Size is the pinned file's size.
func (r *DownloadReader) Size() int64 { return r.size }

// ReadAt reads pinned content. After the session is canceled, failed,
// expired or deleted, reads fail with a StateError.
func (r *DownloadReader) ReadAt(p []byte, off int64) (int, error) {
	if r.ls.ended.Load() {
		return 0, &StateError{Session: r.label, Op: opTransfer, State: StateCanceled}
	}
	var n int
	var err error
	if r.f != nil {
		n, err = r.f.ReadAt(p, off)
		if n > 0 {
			r.readAhead(off, n)
		}
		if verr := r.verify(p[:n], off); verr != nil {
			return 0, verr
		}
	} else if off >= int64(len(r.inline)) {
		err = io.EOF
	} else if n = copy(p, r.inline[off:]); n < len(p) {
		err = io.EOF
	}
	if n > 0 {
		r.served.Add(int64(n))
		r.m.mu.Lock()
		if r.ls.downloading == nil {
			r.ls.downloading = map[string]int64{}
		}
		r.ls.downloading[r.name] += int64(n)
		r.m.mu.Unlock()
	}
	r.m.touch(r.ls)
	return n, err
}

// verify feeds bytes read in order to the hash and, once the reader has
// been served as many bytes as the file has, checks the SHA-256.
func (r *DownloadReader) verify(p []byte, off int64) error {
	r.verifyMu.Lock()
	defer r.verifyMu.Unlock()
	if r.pipe == nil {
		// Once damaged, always: the kernel turns a failed part of a
		// large read into a short read, and the caller reads on.
		return r.damaged
	}
	if end := off + int64(len(p)); off <= r.hashed && end > r.hashed {
		r.pipe.write(p[r.hashed-off:])
		r.hashed = end
	}
	r.counted += int64(len(p))
	if r.hashed < r.size && r.counted < r.size {
		return nil
	}
	pipe := r.pipe
	r.pipe = nil
	if r.hashed < r.size {
		// Served out of order: catch up from the blob.
		rest := io.NewSectionReader(r.f, r.hashed, r.size-r.hashed)
		buf := make([]byte, 1<<20)
		for {
			n, err := rest.Read(buf)
			pipe.write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				pipe.stop()
				r.damaged = wrapf(KindError, ErrContentCorrupt, "file %q of %s: read stored content %s: %v", r.name, r.label, r.f.Name(), err)
				return r.damaged
			}
		}
	}
	sum, _ := pipe.sums()
	if bytes.Equal(sum, r.sha) {
		return nil
	}
	r.m.log.Error("stored content damaged", "session", r.label, "file", r.name, "path", r.f.Name(), "sha256", hex.EncodeToString(sum), "want", hex.EncodeToString(r.sha))
	r.damaged = wrapf(KindError, ErrContentCorrupt, "file %q of %s: stored content %s has sha256 %x, want %x", r.name, r.label, r.f.Name(), sum, r.sha)
	return r.damaged
}

// Close releases the reader and stores the bytes it served.
func (r *DownloadReader) Close() error {
	var err error
	r.closeMu.Do(func() {
		r.verifyMu.Lock()
		if r.pipe != nil {
			r.pipe.stop()
			r.pipe = nil
		}
		r.verifyMu.Unlock()
		r.m.touch(r.ls) // as in StagedFile.Close
		r.ls.handles.Add(-1)
		if r.f != nil {
			err = r.f.Close()
		}
		served := r.served.Load()
		r.m.mu.Lock()
		if r.ls.downloading != nil {
			r.ls.downloading[r.name] -= served
		}
		r.m.mu.Unlock()
		if served == 0 || r.ls.ended.Load() {
			return
		}
		uerr := r.m.store.UpdateBuffered(func(tx *meta.Tx) error {
			f, err := tx.DownloadSessionFile(r.sessionID, r.name)
			if err != nil {
				return err
			}
			f.BytesTransferred += served
			return tx.PutDownloadSessionFile(f)
		})
		if uerr != nil && !errors.Is(uerr, ErrNotFound) {
			r.m.log.Warn("record download progress", "session", r.label, "file", r.name, "err", uerr)
		}
	})
	return err
}
