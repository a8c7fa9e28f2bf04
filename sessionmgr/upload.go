package sessionmgr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"clfs/meta"
)

// Uploads of PUSH files: the session's staged file of a name, shared by
// every handle on it.

// UploadOptions says how a staged file starts.
type UploadOptions struct {
	// FromCommitted starts from a copy of the item's committed file of the
	// same name (append, in-place and partial writes); otherwise empty.
	FromCommitted bool
}

// OpenUpload returns the staged file of a PUSH file added to an ACTIVE
// session, creating it on first use. Callers Close it when done with it;
// Finish ends the transfer.
func (m *Manager) OpenUpload(ctx context.Context, sessionID, name string, opts UploadOptions) (*StagedFile, error) {
	if err := m.refuseIfReadOnly("upload file"); err != nil {
		return nil, err
	}
	var s *meta.UpdateSession
	var rec *meta.UpdateSessionFile
	var root, committedPath string
	var committedBytes []byte
	committedInline := false
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		var err error
		if s, err = m.updateRec(tx, sessionID); err != nil {
			return err
		}
		if err := checkUpdate(s, opTransfer); err != nil {
			return err
		}
		rec, err = tx.UpdateSessionFile(s.ID, name)
		if errors.Is(err, meta.ErrNotFound) || (err == nil && rec.Removed) {
			return errorf(KindInvalidArgument, "file %q was not added to %s", name, updateLabel(s.UUID))
		}
		if err != nil {
			return err
		}
		if rec.SourceType == SourcePull {
			return errorf(KindInvalidArgument, "file %q of %s is pulled by the server from its source endpoint; it takes no upload", name, updateLabel(s.UUID))
		}
		it, err := tx.Item(s.ItemID)
		if err != nil {
			return err
		}
		lib, err := tx.Library(it.LibraryID)
		if err != nil {
			return err
		}
		if root, err = m.backingRoot(tx, lib.BackingID); err != nil {
			return err
		}
		if opts.FromCommitted {
			f, err := tx.File(it, name)
			if err == nil {
				k := meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256}
				if b, err := tx.InlineContent(k); err == nil {
					committedBytes, committedInline = b, true
					return nil
				} else if !errors.Is(err, meta.ErrNotFound) {
					return err
				}
				r, err := m.backingRoot(tx, f.BackingID)
				if err != nil {
					return err
				}
				committedPath = contentPath(r, f.SHA256)
			} else if !errors.Is(err, meta.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ls := m.liveFor(s.ID)
	m.mu.Lock()
	if sf := ls.uploads[name]; sf != nil {
		sf.mu.Lock()
		sf.opens++
		sf.mu.Unlock()
		m.mu.Unlock()
		ls.handles.Add(1)
		m.touch(ls)
		return sf, nil
	}
	m.mu.Unlock()

	requested, _ := normalizeChecksum(checksumOf(rec.Requested))
	if !committedInline {
		committedBytes = nil
	} else if committedBytes == nil {
		committedBytes = []byte{}
	}
	n, err := m.store.NextID(ctx)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(stagingDir(root, s.UUID), strconv.FormatUint(n, 10))
	sf, err := m.newStagedFile(ls, s.ID, name, path, requested, committedPath, committedBytes)
	if err != nil {
		return nil, err
	}
	if rec.ExpectedSize != nil {
		sf.limit, sf.hasLimit = *rec.ExpectedSize, true
	}
	if other, err := m.registerUpload(ls, s.UUID, sf); other != nil {
		// Lost a race with another opener.
		return m.OpenUpload(ctx, sessionID, name, opts)
	} else if err != nil {
		return nil, err
	}
	var previous string // an earlier upload of the file, which this one restarts
	err = m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		r, err := tx.UpdateSessionFile(s.ID, name)
		if err != nil {
			return err
		}
		previous = r.Staging
		if err := setTransferStatus(r, TransferTransferring); err != nil {
			return err
		}
		r.ErrorMessage = ""
		r.Staging = sf.path
		return tx.PutUpdateSessionFile(r)
	})
	if err != nil {
		sf.Close()
		m.discardUpload(s.ID, name)
		return nil, err
	}
	if previous != "" && previous != sf.path {
		os.Remove(previous)
	}
	return sf, nil
}

func checksumOf(c *meta.Checksum) *ChecksumInfo {
	if c == nil {
		return nil
	}
	return &ChecksumInfo{Algorithm: c.Algorithm, Checksum: c.Value}
}

// registerUpload makes sf the session's live upload of its name. It
// returns the upload another opener registered first instead (sf is then
// dropped), or an error if the session ended meanwhile.
func (m *Manager) registerUpload(ls *liveSession, sessionUUID string, sf *StagedFile) (*StagedFile, error) {
	m.mu.Lock()
	if other := ls.uploads[sf.name]; other != nil || ls.ended.Load() {
		m.mu.Unlock()
		sf.discard()
		if other == nil {
			return nil, &StateError{Session: updateLabel(sessionUUID), Op: opTransfer, State: StateCanceled}
		}
		return other, nil
	}
	ls.uploads[sf.name] = sf
	m.mu.Unlock()
	ls.handles.Add(1)
	m.touch(ls)
	return nil, nil
}

// discardUpload drops a live staged file of a session, if any.
func (m *Manager) discardUpload(sessionID uint64, name string) {
	m.mu.Lock()
	var sf *StagedFile
	if ls := m.live[sessionID]; ls != nil {
		sf = ls.uploads[name]
		delete(ls.uploads, name)
	}
	m.mu.Unlock()
	if sf != nil {
		sf.ls.handles.Add(-int32(sf.opensLeft()))
		sf.discard()
	}
}
