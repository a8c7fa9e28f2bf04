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

	// With Options.VerifyReads, stored content is checked against its
	// SHA-256 as it is read in order: a reader that reaches the end of a
	// file whose blob was damaged behind clfs's back gets
	// ErrContentCorrupt for the last bytes, not a silent success.
	// Hashing runs on the pipe's goroutine, beside the disk reads; only
	// the last read waits for it. Readers of part of a file are not
	// checked (that would cost a full read). Without it, blobs are
	// trusted: they are immutable and were hashed at commit; fsck
	// re-hashes them.
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
	err := m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
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
	if file != nil && m.verifyReads {
		r.pipe = newHashPipe(nil, nil)
	}
	return r, nil
}

// Passthrough is the blob the pinned content is stored in, for a front
// end that can have the kernel read it directly (FUSE passthrough): a
// committed blob is immutable and was hashed at commit. ok is false for
// inline content, and under Options.VerifyReads, whose reads must all
// come through ReadAt to be checked. The file stays open until Close.
//
// Reads served from it bypass the reader: they are not counted in
// bytes_transferred, and a session canceled or failed meanwhile does not
// stop them (ReadAt's check): such a reader finishes its pinned version.
func (r *DownloadReader) Passthrough() (f *os.File, ok bool) {
	if r.f == nil || r.m.verifyReads {
		return nil, false
	}
	return r.f, true
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
		// Checked already, or not at all (no VerifyReads). Once
		// damaged, always: the kernel turns a failed part of a
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
		// Close is an io.Closer: no caller's context to stop it.
		uerr := r.m.store.UpdateBuffered(context.Background(), func(tx *meta.Tx) error {
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
