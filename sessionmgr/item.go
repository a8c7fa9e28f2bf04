package sessionmgr

import (
	"context"
	"errors"
	"strings"

	"clfs/meta"
)

// Library items (spec §2). An item is created empty; content arrives only
// through update sessions. Item names are unique per library,
// case-insensitively (spec §12 #23).

// CreateItem creates an empty item and returns its id.
func (m *Manager) CreateItem(ctx context.Context, spec ItemCreateSpec, clientToken string) (string, error) {
	if err := m.refuseIfReadOnly("create library item"); err != nil {
		return "", err
	}
	if err := validateItemName(spec.Name); err != nil {
		return "", err
	}
	if err := validateDescription(spec.Description); err != nil {
		return "", err
	}
	id, err := m.store.NextID(ctx)
	if err != nil {
		return "", err
	}
	var out, libName string
	err = m.updateNamespace(ctx, func(tx *meta.Tx) error {
		prev, specHash, err := replayToken(tx, tokenItem, clientToken, spec)
		if err != nil || prev != "" {
			out = prev
			return err
		}
		lib, err := m.libraryRec(tx, spec.LibraryID)
		if err != nil {
			return err
		}
		libName = lib.Name
		if other, err := tx.ItemIDByName(lib.ID, spec.Name); err == nil {
			o, _ := tx.Item(other)
			name := spec.Name
			if o != nil {
				name = o.Name
			}
			return errorf(KindAlreadyExists, "item %s/%s already exists", lib.Name, name)
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		now := m.now()
		it := &meta.Item{
			ID: id, UUID: newUUID(), LibraryID: lib.ID, Name: spec.Name,
			Description: spec.Description, Type: spec.Type,
			ContentVersion: 1, MetadataVersion: 1, Version: 1,
			CreationTime: now, LastModifiedTime: now,
			Attr:      meta.Attr{Mode: 0o755, Mtime: now, Ctime: now, Atime: &now},
			SizeKnown: true,
		}
		out = it.UUID
		for _, f := range []func() error{
			func() error { return tx.PutItem(it) }, // and its name and API id
			// Unchanged, but written: a DeleteLibrary running meanwhile
			// read it, so one of the two conflicts and its retry sees
			// the other (its scan of the library's items cannot).
			func() error { return tx.PutLibrary(lib) },
			func() error { return rememberToken(tx, tokenItem, clientToken, specHash, it.UUID) },
		} {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		m.notify(Change{Library: libName, Item: spec.Name, Appeared: !byMount(ctx)})
	}
	return out, err
}

// GetItem returns an item by id.
func (m *Manager) GetItem(ctx context.Context, id string) (*Item, error) {
	return m.getItem(ctx, id, m.store.View)
}

// ItemAttributes is GetItem for the kernel's attribute requests: on a
// shared catalog it may be a few milliseconds behind other nodes'
// commits (meta.Store.ViewRecent), as the kernel's own caches are.
func (m *Manager) ItemAttributes(ctx context.Context, id string) (*Item, error) {
	return m.getItem(ctx, id, m.store.ViewRecent)
}

func (m *Manager) getItem(ctx context.Context, id string, view func(context.Context, func(*meta.Tx) error) error) (*Item, error) {
	var out *Item
	err := view(ctx, func(tx *meta.Tx) error {
		it, err := m.itemRec(tx, id)
		if err != nil {
			return err
		}
		out, err = itemInfo(tx, it)
		return err
	})
	return out, err
}

// ItemByName returns the item of a library with that name
// (case-insensitive).
func (m *Manager) ItemByName(ctx context.Context, libraryID, name string) (*Item, error) {
	var out *Item
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		lib, err := m.libraryRec(tx, libraryID)
		if err != nil {
			return err
		}
		n, err := tx.ItemIDByName(lib.ID, name)
		if err != nil {
			return notFoundAs(err, KindNotFound, "item %s/%s not found", lib.Name, name)
		}
		it, err := tx.Item(n)
		if err != nil {
			return err
		}
		out, err = itemInfo(tx, it)
		return err
	})
	return out, err
}

// ListItems returns the items of a library, ordered by name.
func (m *Manager) ListItems(ctx context.Context, libraryID string) ([]Item, error) {
	out := []Item{}
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		out = out[:0] // the body may run again (meta.Store.View)
		lib, err := m.libraryRec(tx, libraryID)
		if err != nil {
			return err
		}
		ids, err := tx.ItemIDs(lib.ID)
		if err != nil {
			return err
		}
		for _, n := range ids {
			it, err := tx.Item(n)
			if err != nil {
				return err
			}
			info, err := itemInfo(tx, it)
			if err != nil {
				return err
			}
			out = append(out, *info)
		}
		return nil
	})
	return out, err
}

// FindItems returns the ids of items matching every set field of spec.
func (m *Manager) FindItems(ctx context.Context, spec ItemFindSpec) ([]string, error) {
	if spec.Name == nil && spec.LibraryID == nil && spec.SourceID == nil && spec.Type == nil && spec.Cached == nil {
		return nil, errorf(KindInvalidArgument, "find spec has no property set")
	}
	ids := []string{}
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		ids = ids[:0] // the body may run again (meta.Store.View)
		items, err := tx.Items()
		if err != nil {
			return err
		}
		for i := range items {
			if deleting(tx, &items[i]) {
				continue
			}
			info, err := itemInfo(tx, &items[i])
			if err != nil {
				return err
			}
			switch {
			case spec.Name != nil && !strings.EqualFold(*spec.Name, info.Name),
				spec.LibraryID != nil && *spec.LibraryID != info.LibraryID,
				spec.SourceID != nil, // local items have no source
				spec.Type != nil && !strings.EqualFold(*spec.Type, info.Type),
				spec.Cached != nil && *spec.Cached != info.Cached:
				continue
			}
			ids = append(ids, info.ID)
		}
		return nil
	})
	return ids, err
}

// UpdateItem changes an item's properties; version and metadata_version
// go up together, content_version does not move.
func (m *Manager) UpdateItem(ctx context.Context, id string, spec ItemUpdateSpec) error {
	if err := m.refuseIfReadOnly("update library item"); err != nil {
		return err
	}
	lib, item := m.namesOf(ctx, "", id)
	err := m.updateItem(ctx, id, spec)
	if err == nil {
		m.notify(Change{Library: lib, Item: item, Gone: spec.Name != nil})
		if spec.Name != nil {
			m.notify(Change{Library: lib, Item: *spec.Name, Appeared: true})
		}
	}
	return err
}

func (m *Manager) updateItem(ctx context.Context, id string, spec ItemUpdateSpec) error {
	if spec.Name != nil {
		if err := validateItemName(*spec.Name); err != nil {
			return err
		}
	}
	if spec.Description != nil {
		if err := validateDescription(*spec.Description); err != nil {
			return err
		}
	}
	return m.store.Update(ctx, func(tx *meta.Tx) error {
		it, err := m.itemRec(tx, id)
		if err != nil {
			return err
		}
		if spec.Version != "" && spec.Version != fmtCounter(it.Version) {
			return errorf(KindInvalidArgument, "item %s is at version %d, not %s", itemLabel(tx, it), it.Version, spec.Version)
		}
		if spec.Name != nil && *spec.Name != it.Name {
			other, err := tx.ItemIDByName(it.LibraryID, *spec.Name)
			if err == nil && other != it.ID {
				lib, _ := tx.Library(it.LibraryID)
				return errorf(KindAlreadyExists, "item %s/%s already exists", lib.Name, *spec.Name)
			}
			if err != nil && !errors.Is(err, meta.ErrNotFound) {
				return err
			}
			it.Name = *spec.Name // PutItem moves the name index
		}
		if spec.Description != nil {
			it.Description = *spec.Description
		}
		if spec.Type != nil {
			it.Type = *spec.Type
		}
		now := m.now()
		it.Version++
		it.MetadataVersion++
		it.LastModifiedTime = now
		it.Attr.Ctime = now
		return tx.PutItem(it)
	})
}

// SetItemPosix stores mode, owner and mtime of an item directory.
func (m *Manager) SetItemPosix(ctx context.Context, id string, set PosixChange) error {
	if err := m.refuseIfReadOnly("set library item attributes"); err != nil {
		return err
	}
	defer m.notifyItem(ctx, id)
	return m.updateNamespace(ctx, func(tx *meta.Tx) error {
		it, err := m.itemRec(tx, id)
		if err != nil {
			return err
		}
		set.apply(&it.Attr, m.now())
		return tx.PutItem(it)
	})
}

// DeleteItem deletes an item at once (spec §12 #21): its ACTIVE sessions go
// to ERROR, readers of its download sessions get errors, and content no
// longer referenced is removed.
func (m *Manager) DeleteItem(ctx context.Context, id string) error {
	if err := m.refuseIfReadOnly("delete library item"); err != nil {
		return err
	}
	lib, item := m.namesOf(ctx, "", id)
	var drop []meta.ContentKey
	var ended []endedSession
	large := false
	err := m.store.Update(ctx, func(tx *meta.Tx) error {
		it, err := m.itemRec(tx, id)
		if err != nil {
			return err
		}
		drop, ended, large, err = m.deleteItemTx(tx, it)
		return err
	})
	if err != nil {
		return err
	}
	m.afterEnd(ctx, ended)
	m.dropUnreferenced(ctx, drop)
	m.notify(Change{Library: lib, Item: item, Gone: true})
	if large {
		m.finishDeleting(ctx)
	}
	return nil
}

// deleteItemTx deletes an item: its sessions end, and its files go with
// it, or, if it has more than sweepFiles (large), it is hidden for
// sweepHidden to remove them in bounded transactions (sweep.go).
func (m *Manager) deleteItemTx(tx *meta.Tx, it *meta.Item) (drop []meta.ContentKey, ended []endedSession, large bool, err error) {
	files, err := tx.FirstFiles(it, sweepFiles+1)
	if err != nil {
		return nil, nil, false, err
	}
	if large = len(files) > sweepFiles; !large {
		if drop, err = deleteFilesTx(tx, it.Table(), files); err != nil {
			return nil, nil, false, err
		}
	}
	drop, ended, err = m.endItemSessionsTx(tx, it, drop)
	if err != nil {
		return nil, nil, false, err
	}
	if large {
		return drop, ended, true, tx.HideItem(it.ID) // its name and API id go
	}
	return drop, ended, false, tx.DeleteItem(it.ID) // and its name and API id
}

// endItemSessionsTx ends the sessions of an item being deleted.
func (m *Manager) endItemSessionsTx(tx *meta.Tx, it *meta.Item, drop []meta.ContentKey) (_ []meta.ContentKey, ended []endedSession, err error) {
	msg := "library item " + itemLabel(tx, it) + " was deleted"
	// An item has at most one ACTIVE update session, found through its
	// lock (not a scan of every session ever kept: rm -rf of 50 items
	// after a tar of 5,000 files decoded 250,000 session records).
	// Reading the lock, which every create writes, also makes a create
	// running meanwhile conflict with this transaction.
	if n, err := tx.ActiveUpdate(it.ID); err == nil {
		s, err := tx.UpdateSession(n)
		if err != nil {
			return nil, nil, err
		}
		if err := m.endUpdateTx(tx, s, opItemDeleted, msg); err != nil {
			return nil, nil, err
		}
		ended = append(ended, endedSession{s.ID, s.UUID})
	} else if !errors.Is(err, meta.ErrNotFound) {
		return nil, nil, err
	}
	downs, err := tx.DownloadSessionsOfItem(it.ID)
	if err != nil {
		return nil, nil, err
	}
	for i := range downs {
		s := &downs[i]
		if State(s.State) != StateActive {
			continue
		}
		d, err := m.endDownloadTx(tx, s, opItemDeleted, msg)
		if err != nil {
			return nil, nil, err
		}
		drop = append(drop, d...)
		ended = append(ended, endedSession{s.ID, s.UUID})
	}
	return drop, ended, nil
}

func itemInfo(tx *meta.Tx, it *meta.Item) (*Item, error) {
	lib, err := tx.Library(it.LibraryID)
	if err != nil {
		return nil, err
	}
	size, err := itemSize(tx, it)
	if err != nil {
		return nil, err
	}
	return &Item{
		ID: it.UUID, LibraryID: lib.UUID, Name: it.Name, Description: it.Description, Type: it.Type,
		ContentVersion:   fmtCounter(it.ContentVersion),
		MetadataVersion:  fmtCounter(it.MetadataVersion),
		Version:          fmtCounter(it.Version),
		CreationTime:     nsTime(it.CreationTime),
		LastModifiedTime: nsTime(it.LastModifiedTime),
		Cached:           true,
		Size:             size,
		Posix:            posixOf(it.ID, it.Attr),
	}, nil
}

// itemSize is the total size of an item's files.
func itemSize(tx *meta.Tx, it *meta.Item) (int64, error) {
	if it.SizeKnown {
		return it.Size, nil
	}
	files, err := tx.Files(it)
	if err != nil {
		return 0, err
	}
	var size int64
	for _, f := range files {
		size += f.Size
	}
	return size, nil
}
