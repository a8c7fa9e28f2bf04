package sessionmgr

import (
	"context"
	"encoding/hex"

	"clfs/meta"
)

// Item files and their storage (spec §3, §4): read-only views of an item's
// committed file table. Files change only through update sessions.

// ListFiles returns the committed files of an item, ordered by name.
func (m *Manager) ListFiles(ctx context.Context, itemID string) ([]File, error) {
	out := []File{}
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		out = out[:0] // the body may run again (meta.Store.View)
		it, err := m.itemRec(tx, itemID)
		if err != nil {
			return err
		}
		files, err := tx.Files(it)
		for i := range files {
			out = append(out, fileInfo(&files[i]))
		}
		return err
	})
	return out, err
}

// GetFile returns one committed file of an item.
func (m *Manager) GetFile(ctx context.Context, itemID, name string) (*File, error) {
	var out File
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		f, err := m.fileRec(tx, itemID, name)
		if err == nil {
			out = fileInfo(f)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SetFilePosix stores mode, owner and mtime of a committed file. It is
// metadata: no update session, no new version.
func (m *Manager) SetFilePosix(ctx context.Context, itemID, name string, set PosixChange) error {
	_, err := m.setFilePosix(ctx, itemID, name, set, true)
	return err
}

// setFilePosix is SetFilePosix, and the file's entry after it; notify says
// whether to report the Change. A Draft's change is the mount's own: the
// kernel learns the attributes from the reply to its SETATTR, and a report
// would only make it drop them and ask again.
func (m *Manager) setFilePosix(ctx context.Context, itemID, name string, set PosixChange, notify bool) (*FileEntry, error) {
	if err := m.refuseIfReadOnly("set file attributes"); err != nil {
		return nil, err
	}
	var e FileEntry
	err := m.updateNamespace(ctx, func(tx *meta.Tx) error {
		it, f, err := m.itemFileRec(tx, itemID, name)
		if err != nil {
			return err
		}
		set.apply(&f.Attr, m.now())
		info := fileInfo(f)
		e = entryOf(&info)
		return tx.PutFile(it, f)
	})
	if err != nil {
		return nil, err
	}
	if notify {
		m.notifyItem(ctx, itemID, name)
	}
	return &e, nil
}

// ListStorage returns where each file of an item is stored.
func (m *Manager) ListStorage(ctx context.Context, itemID string) ([]Storage, error) {
	out := []Storage{}
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		out = out[:0] // the body may run again (meta.Store.View)
		it, err := m.itemRec(tx, itemID)
		if err != nil {
			return err
		}
		files, err := tx.Files(it)
		if err != nil {
			return err
		}
		for i := range files {
			s, err := m.storageInfo(tx, &files[i])
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return nil
	})
	return out, err
}

// GetStorage returns the copies of one file: one per backing, so one.
func (m *Manager) GetStorage(ctx context.Context, itemID, name string) ([]Storage, error) {
	out := []Storage{}
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		f, err := m.fileRec(tx, itemID, name)
		if err != nil {
			return err
		}
		s, err := m.storageInfo(tx, f)
		out = []Storage{s}
		return err
	})
	return out, err
}

func (m *Manager) fileRec(tx *meta.Tx, itemID, name string) (*meta.File, error) {
	_, f, err := m.itemFileRec(tx, itemID, name)
	return f, err
}

// itemFileRec is fileRec with the file's item.
func (m *Manager) itemFileRec(tx *meta.Tx, itemID, name string) (*meta.Item, *meta.File, error) {
	it, err := m.itemRec(tx, itemID)
	if err != nil {
		return nil, nil, err
	}
	f, err := tx.File(it, name)
	if err != nil {
		return nil, nil, notFoundAs(err, KindNotFound, "file %s/%s not found", itemLabel(tx, it), name)
	}
	return it, f, nil
}

func (m *Manager) storageInfo(tx *meta.Tx, f *meta.File) (Storage, error) {
	root, err := m.backingRoot(tx, f.BackingID)
	if err != nil {
		return Storage{}, err
	}
	path, err := m.blobFile(tx, root, meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256})
	if err != nil {
		return Storage{}, err
	}
	fi := fileInfo(f)
	return Storage{
		Name: fi.Name, Size: fi.Size, Cached: true, Version: fi.Version, ChecksumInfo: fi.ChecksumInfo,
		StorageBacking: StorageBacking{Type: "OTHER", StorageURI: fileURI(root)},
		StorageURIs:    []string{fileURI(path)},
	}, nil
}

func fileInfo(f *meta.File) File {
	out := File{
		Name: f.Name, Size: f.Size, Cached: true, Version: fmtCounter(f.Version),
		ChecksumInfo: &ChecksumInfo{Algorithm: AlgSHA256, Checksum: hex.EncodeToString(f.SHA256)},
		Posix:        posixOf(f.ID, f.Attr),
	}
	if f.Requested != nil {
		out.RequestedChecksum = &ChecksumInfo{Algorithm: f.Requested.Algorithm, Checksum: f.Requested.Value}
	}
	return out
}
