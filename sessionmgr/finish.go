package sessionmgr

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"

	"clfs/meta"
)

// The end of a transfer: the staged bytes are sealed (hashed, synced, no
// longer writable) and judged against the size and checksum the client
// declared.

// sealedUpload is a staged file whose bytes are final: hashed, on disk
// and synced (or in memory, for a small file), no longer writable.
type sealedUpload struct {
	staging     string // the upload's staging path: its identity in records
	size        int64
	sha         []byte
	requested   string // hex digest in the client's algorithm
	inMemory    bool
	inline      []byte // the bytes, when inMemory
	transferred int64
	err         error // reading or syncing the staged bytes failed
}

// seal ends writing: the bytes are hashed and made durable, the upload
// leaves the session's live uploads and gives back its handles. It fails
// only if the upload is no longer usable (session ended); I/O errors are
// in the result, for the verdict.
func (sf *StagedFile) seal() (*sealedUpload, error) {
	m := sf.m
	sf.mu.Lock()
	if err := sf.usable(); err != nil {
		sf.mu.Unlock()
		return nil, err
	}
	up := &sealedUpload{staging: sf.path, size: sf.size, inMemory: sf.f == nil, transferred: sf.transferred.Load()}
	if up.inMemory {
		up.inline = sf.mem[:sf.size]
		up.sha, up.requested = digest(sf.requested, up.inline)
	} else {
		up.sha, up.requested, up.err = sf.finalHashes()
		if up.err == nil {
			if err := sf.f.Sync(); err != nil {
				up.err = storageErr("sync staging", err)
			}
		}
	}
	if sf.failure != nil {
		up.err = sf.failure
	}
	sf.closeFileLocked()
	// The bytes now belong to up: the budget is given back, the buffer
	// is not reused.
	sf.m.stagedMem.Add(-int64(len(sf.mem)))
	sf.mem = nil
	ls := sf.ls
	sf.mu.Unlock()

	m.mu.Lock()
	if ls.uploads[sf.name] == sf {
		delete(ls.uploads, sf.name)
	}
	m.mu.Unlock()
	m.touch(ls) // as in Close
	ls.handles.Add(-int32(sf.opensLeft()))
	return up, nil
}

// Finish ends the transfer: the staged bytes are hashed, made durable and
// checked against the size and checksum the client declared. The file is
// then READY, or ERROR with the reason, which is also returned.
func (sf *StagedFile) Finish(ctx context.Context) (*UpdateSessionFile, error) {
	m := sf.m
	up, err := sf.seal()
	if err != nil {
		return nil, err
	}
	// Sealed, the transfer has ended and cannot be resumed: its verdict
	// is recorded whether or not the caller is still there (a client
	// that hangs up after its last byte), or the file would be left
	// TRANSFERRING with nothing to finish it.
	ctx = context.WithoutCancel(ctx)
	sid, path, size, sha, requested, ioErr := sf.sessionID, up.staging, up.size, up.sha, up.requested, up.err
	inline, inMemory := up.inline, up.inMemory
	if inMemory && ioErr == nil {
		used, err := m.inlineStaged(ctx, sid, sf.name)
		if err != nil {
			return nil, err
		}
		if used+size > inlineCommitBudget {
			// Past the session's budget: a staging file, as for a
			// large upload.
			if err := writeStagingFile(path, inline); err != nil {
				ioErr = err
			}
			inline, inMemory = nil, false
		}
	}
	var info UpdateSessionFile
	var verdict error
	var owner string
	err = m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		s, err := tx.UpdateSession(sid)
		if err != nil {
			return err
		}
		owner = s.Owner
		op := opTransfer
		if sf.pull {
			op = opPull // may end while a complete waits for it
		}
		if err := checkUpdate(s, op); err != nil {
			return err
		}
		r, err := tx.UpdateSessionFile(s.ID, sf.name)
		if err != nil {
			return err
		}
		if r.Staging != path {
			return errorf(KindInvalidArgument, "file %q of %s was added again during its transfer", sf.name, updateLabel(s.UUID))
		}
		r.BytesTransferred = sf.transferred.Load()
		r.Size = size
		r.SHA256 = sha
		r.Inline = false
		verdict = judge(r, size, requested, ioErr)
		if verdict != nil {
			if err := setTransferStatus(r, TransferError); err != nil {
				return err
			}
			r.ErrorMessage = messageOf(verdict)
		} else {
			if err := setTransferStatus(r, TransferReady); err != nil {
				return err
			}
			r.ErrorMessage = ""
			if inMemory {
				r.Inline = true
				if err := tx.PutStagedBytes(s.ID, sf.name, inline); err != nil {
					return err
				}
			}
		}
		info = m.sessionFileInfo(s.ID, s.UUID, r)
		return tx.PutUpdateSessionFile(r)
	})

	if err == nil {
		// A READY file survives a restart: its bytes are synced above.
		err = m.syncFor(owner)
	}
	if err != nil {
		return nil, err
	}
	return &info, verdict
}

// inlineStaged is how many bytes the session's files other than name
// have staged in the catalog.
func (m *Manager) inlineStaged(ctx context.Context, sessionID uint64, name string) (int64, error) {
	var used int64
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		used = 0 // the body may run again (meta.Store.View)
		files, err := tx.UpdateSessionFiles(sessionID)
		for _, f := range files {
			if f.Inline && f.Name != name {
				used += f.Size
			}
		}
		return err
	})
	return used, err
}

// writeStagingFile puts the bytes of a sealed in-memory upload in its
// staging file, synced, for a commit that takes it as a blob file.
func writeStagingFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return storageErr("create staging", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return storageErr("create staging", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return storageErr("write staging", err)
	}
	return nil
}

// Abort ends the transfer in ERROR for cause (the stream broke, a write
// was refused): the file cannot become READY from what was received.
func (sf *StagedFile) Abort(ctx context.Context, cause error) error {
	sf.mu.Lock()
	if sf.failure == nil {
		sf.failure = cause
	}
	sf.mu.Unlock()
	_, err := sf.Finish(ctx)
	return err
}

// judge checks a received file against what the client declared.
func judge(r *meta.UpdateSessionFile, size int64, requested string, ioErr error) error {
	if errors.Is(ioErr, ErrSizeMismatch) { // a write past the declared size
		return ioErr
	}
	if ioErr != nil {
		return wrapf(KindError, ioErr, "file %q: %v", r.Name, ioErr)
	}
	if r.ExpectedSize != nil && *r.ExpectedSize != size {
		return wrapf(KindInvalidArgument, ErrSizeMismatch, "file %q: size mismatch: expected %d bytes, received %d", r.Name, *r.ExpectedSize, size)
	}
	if r.Requested != nil && r.Requested.Value != requested {
		return wrapf(KindInvalidArgument, ErrChecksumMismatch, "file %q: %s checksum mismatch: expected %s, received %s", r.Name, r.Requested.Algorithm, r.Requested.Value, requested)
	}
	return nil
}

// finalHashes completes the running hashes, reading from the file whatever
// was not hashed on the way in.
func (sf *StagedFile) finalHashes() (sha []byte, requested string, err error) {
	if sf.hashed < sf.size {
		r := io.NewSectionReader(sf.f, sf.hashed, sf.size-sf.hashed)
		buf := make([]byte, 1<<20)
		for {
			n, rerr := r.Read(buf)
			if n > 0 {
				sf.pipe.write(buf[:n])
				sf.hashed += int64(n)
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return nil, "", storageErr("read staging", rerr)
			}
		}
	}
	sha, requested = sf.pipe.sums()
	return sha, requested, nil
}
