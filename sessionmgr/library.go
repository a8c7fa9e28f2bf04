package sessionmgr

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"

	"clfs/meta"
)

// Local libraries (spec §1). Library names are unique in clfs, because
// they are directory names in the mount (spec §12 #23), and case-
// insensitively so, because find is.

const libraryType = "LOCAL"

// CreateLibrary creates a local library and returns its id.
func (m *Manager) CreateLibrary(ctx context.Context, spec LibraryCreateSpec, clientToken string) (string, error) {
	if err := m.refuseIfReadOnly("create library"); err != nil {
		return "", err
	}
	if err := ValidateName("library", spec.Name); err != nil {
		return "", err
	}
	if err := validateDescription(spec.Description); err != nil {
		return "", err
	}
	dir, err := storageDirOf(spec)
	if err != nil {
		return "", err
	}
	if dir == "" {
		dir = m.defaultStorage
	}
	root, err := prepareBacking(dir)
	if err != nil {
		return "", err
	}
	spec.StorageDir, spec.StorageBackings = root, nil
	id, err := m.store.NextID(ctx)
	if err != nil {
		return "", err
	}
	newBackingID, err := m.store.NextID(ctx)
	if err != nil {
		return "", err
	}
	var out string
	err = m.updateNamespace(ctx, func(tx *meta.Tx) error {
		prev, specHash, err := replayToken(tx, tokenLibrary, clientToken, spec)
		if err != nil || prev != "" {
			out = prev
			return err
		}
		if _, err := tx.LibraryIDByName(spec.Name); err == nil {
			return errorf(KindAlreadyExists, "library %q already exists", spec.Name)
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		backingID, err := tx.BackingIDByRoot(root)
		if errors.Is(err, meta.ErrNotFound) {
			backingID = newBackingID
			err = tx.PutBacking(&meta.Backing{ID: backingID, Root: root})
		}
		if err != nil {
			return err
		}
		now := m.now()
		lib := &meta.Library{
			ID: id, UUID: newUUID(), Name: spec.Name, Description: spec.Description,
			BackingID: backingID, CreationTime: now, LastModifiedTime: now, Version: 1,
			Attr: meta.Attr{Mode: 0o755, Mtime: now, Ctime: now, Atime: &now},
		}
		out = lib.UUID
		for _, f := range []func() error{
			func() error { return tx.PutLibrary(lib) }, // and its name and API id
			func() error { return rememberToken(tx, tokenLibrary, clientToken, specHash, lib.UUID) },
		} {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		m.rememberBacking(root)
		m.notify(Change{Library: spec.Name, Appeared: !byMount(ctx)})
	}
	return out, err
}

// storageDirOf is the directory a create spec asks for: its storage_dir,
// or its one storage backing, which must be a directory (an OTHER backing
// with a file:// URI): clfs has no datastores.
func storageDirOf(spec LibraryCreateSpec) (string, error) {
	switch len(spec.StorageBackings) {
	case 0:
		return spec.StorageDir, nil
	case 1:
	default:
		return "", errorf(KindUnsupported, "library %q: %d storage backings: only one is supported", spec.Name, len(spec.StorageBackings))
	}
	b := spec.StorageBackings[0]
	if !strings.EqualFold(b.Type, "OTHER") {
		return "", errorf(KindInvalidArgument, "library %q: storage backing of type %q: clfs has no datastores; give {\"type\": \"OTHER\", \"storage_uri\": \"file:///DIR\"}, or no backing for the home's storage", spec.Name, b.Type)
	}
	u, err := url.Parse(b.StorageURI)
	if err != nil || u.Scheme != "file" || (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(u.Path) {
		return "", errorf(KindInvalidArgument, "library %q: storage_uri %q: want file:///DIR, an absolute directory on this machine", spec.Name, b.StorageURI)
	}
	if spec.StorageDir != "" && filepath.Clean(spec.StorageDir) != filepath.Clean(u.Path) {
		return "", errorf(KindInvalidArgument, "library %q: storage_dir %q and storage_uri %q disagree", spec.Name, spec.StorageDir, b.StorageURI)
	}
	return u.Path, nil
}

// GetLibrary returns a library by id.
func (m *Manager) GetLibrary(ctx context.Context, id string) (*Library, error) {
	return m.getLibrary(ctx, id, m.store.View)
}

// LibraryAttributes is GetLibrary for the kernel's attribute requests
// (see ItemAttributes).
func (m *Manager) LibraryAttributes(ctx context.Context, id string) (*Library, error) {
	return m.getLibrary(ctx, id, m.store.ViewRecent)
}

func (m *Manager) getLibrary(ctx context.Context, id string, view func(context.Context, func(*meta.Tx) error) error) (*Library, error) {
	var out *Library
	err := view(ctx, func(tx *meta.Tx) error {
		lib, err := m.libraryRec(tx, id)
		if err != nil {
			return err
		}
		out, err = m.libraryInfo(tx, lib)
		return err
	})
	return out, err
}

// LibraryByName returns the library with that name (case-insensitive).
func (m *Manager) LibraryByName(ctx context.Context, name string) (*Library, error) {
	var out *Library
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		n, err := tx.LibraryIDByName(name)
		if err != nil {
			return notFoundAs(err, KindNotFound, "library %q not found", name)
		}
		lib, err := tx.Library(n)
		if err != nil {
			return err
		}
		out, err = m.libraryInfo(tx, lib)
		return err
	})
	return out, err
}

// ListLibraries returns every library, ordered by name.
func (m *Manager) ListLibraries(ctx context.Context) ([]Library, error) {
	out := []Library{}
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		out = out[:0] // the body may run again (meta.Store.View)
		libs, err := tx.Libraries()
		if err != nil {
			return err
		}
		for i := range libs {
			if libs[i].Deleting {
				continue // hidden, being deleted (sweep.go)
			}
			l, err := m.libraryInfo(tx, &libs[i])
			if err != nil {
				return err
			}
			out = append(out, *l)
		}
		return nil
	})
	sortBy(out, func(l Library) string { return strings.ToLower(l.Name) })
	return out, err
}

// FindLibraries returns the ids of libraries matching every set field.
func (m *Manager) FindLibraries(ctx context.Context, spec LibraryFindSpec) ([]string, error) {
	if spec.Name == nil && spec.Type == nil {
		return nil, errorf(KindInvalidArgument, "find spec has no property set")
	}
	libs, err := m.ListLibraries(ctx)
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for _, l := range libs {
		if spec.Name != nil && !strings.EqualFold(*spec.Name, l.Name) {
			continue
		}
		if spec.Type != nil && !strings.EqualFold(*spec.Type, l.Type) {
			continue
		}
		ids = append(ids, l.ID)
	}
	return ids, nil
}

// UpdateLibrary changes a library's name or description.
func (m *Manager) UpdateLibrary(ctx context.Context, id string, spec LibraryUpdateSpec) error {
	if err := m.refuseIfReadOnly("update library"); err != nil {
		return err
	}
	lib, _ := m.namesOf(ctx, id, "")
	err := m.updateLibrary(ctx, id, spec)
	if err == nil {
		m.notify(Change{Library: lib, Gone: spec.Name != nil})
		if spec.Name != nil {
			m.notify(Change{Library: *spec.Name, Appeared: true})
		}
	}
	return err
}

func (m *Manager) updateLibrary(ctx context.Context, id string, spec LibraryUpdateSpec) error {
	if spec.Name != nil {
		if err := ValidateName("library", *spec.Name); err != nil {
			return err
		}
	}
	if spec.Description != nil {
		if err := validateDescription(*spec.Description); err != nil {
			return err
		}
	}
	return m.store.Update(ctx, func(tx *meta.Tx) error {
		lib, err := m.libraryRec(tx, id)
		if err != nil {
			return err
		}
		if spec.Version != "" && spec.Version != fmtCounter(lib.Version) {
			return errorf(KindConcurrentChange, "library %q is at version %d, not %s", lib.Name, lib.Version, spec.Version)
		}
		if spec.Name != nil && *spec.Name != lib.Name {
			other, err := tx.LibraryIDByName(*spec.Name)
			if err == nil && other != lib.ID {
				return errorf(KindAlreadyExists, "library %q already exists", *spec.Name)
			}
			if err != nil && !errors.Is(err, meta.ErrNotFound) {
				return err
			}
			lib.Name = *spec.Name // PutLibrary moves the name index
		}
		if spec.Description != nil {
			lib.Description = *spec.Description
		}
		now := m.now()
		lib.Version++
		lib.LastModifiedTime = now
		lib.Attr.Ctime = now
		return tx.PutLibrary(lib)
	})
}

// SetLibraryPosix stores mode, owner and mtime of a library directory.
func (m *Manager) SetLibraryPosix(ctx context.Context, id string, set PosixChange) error {
	if err := m.refuseIfReadOnly("set library attributes"); err != nil {
		return err
	}
	lib, _ := m.namesOf(ctx, id, "")
	defer m.notify(Change{Library: lib})
	return m.updateNamespace(ctx, func(tx *meta.Tx) error {
		lib, err := m.libraryRec(tx, id)
		if err != nil {
			return err
		}
		set.apply(&lib.Attr, m.now())
		return tx.PutLibrary(lib)
	})
}

// DeleteLibrary deletes a library and, with it, its items (spec §12 #22):
// sessions on them go to ERROR and unreferenced content is removed.
func (m *Manager) DeleteLibrary(ctx context.Context, id string) error {
	if err := m.refuseIfReadOnly("delete library"); err != nil {
		return err
	}
	lib, _ := m.namesOf(ctx, id, "")
	defer func() {
		if lib != "" {
			m.notify(Change{Library: lib, Gone: true})
		}
	}()
	var drop []meta.ContentKey
	var ended []endedSession
	hidden := false
	err := m.store.Update(ctx, func(tx *meta.Tx) error {
		drop, ended, hidden = nil, nil, false
		lib, err := m.libraryRec(tx, id)
		if err != nil {
			return err
		}
		itemIDs, err := tx.FirstItemIDs(lib.ID, 2)
		if err != nil {
			return err
		}
		if len(itemIDs) > 1 {
			// More than one transaction's worth (sweep.go): gone for
			// every client now, its items removed one by one.
			hidden = true
			return tx.HideLibrary(lib.ID)
		}
		for _, itemID := range itemIDs {
			it, err := tx.Item(itemID)
			if err != nil {
				return err
			}
			var large bool
			if drop, ended, large, err = m.deleteItemTx(tx, it); err != nil {
				return err
			}
			hidden = hidden || large
		}
		return tx.DeleteLibrary(lib.ID) // and its name and API id
	})
	if err != nil {
		return err
	}
	m.afterEnd(ctx, ended)
	m.dropUnreferenced(ctx, drop)
	if hidden {
		m.finishDeleting(ctx)
	}
	return nil
}

func (m *Manager) libraryInfo(tx *meta.Tx, lib *meta.Library) (*Library, error) {
	root, err := m.backingRoot(tx, lib.BackingID)
	if err != nil {
		return nil, err
	}
	return &Library{
		ID: lib.UUID, Name: lib.Name, Description: lib.Description, Type: libraryType,
		StorageBackings:  []StorageBacking{{Type: "OTHER", StorageURI: fileURI(root)}},
		CreationTime:     nsTime(lib.CreationTime),
		LastModifiedTime: nsTime(lib.LastModifiedTime),
		Version:          fmtCounter(lib.Version),
		Posix:            posixOf(lib.ID, lib.Attr),
	}, nil
}
