package sessionmgr

import (
	"context"
	"errors"

	"clfs/meta"
)

// Renaming libraries and items as rename(2) renames directories: the
// source is looked up, an existing target is replaced if it is empty
// (ErrNotEmpty if not, AlreadyExists under noReplace) and the source takes
// its name, all in one catalog transaction. A file committed into the
// replaced item, or an item created in the replaced library, meanwhile
// either makes the rename fail or fails itself, as for DeleteItemIfEmpty.
// Renaming to the same name changes nothing; a name differing only in
// case (names are unique case-insensitively) is the same entry, renamed.

// RenameLibrary renames the library named oldName to newName.
func (m *Manager) RenameLibrary(ctx context.Context, oldName, newName string, noReplace bool) error {
	if err := m.refuseIfReadOnly("rename library"); err != nil {
		return err
	}
	if err := ValidateName("library", newName); err != nil {
		return err
	}
	var gone []Change
	err := m.updateNamespace(ctx, func(tx *meta.Tx) error {
		gone = nil
		n, err := tx.LibraryIDByName(oldName)
		if errors.Is(err, meta.ErrNotFound) {
			return errorf(KindNotFound, "library %q not found", oldName)
		}
		if err != nil {
			return err
		}
		lib, err := tx.Library(n)
		if err != nil {
			return err
		}
		if oldName == newName {
			return nil
		}
		other, err := tx.LibraryIDByName(newName)
		switch {
		case err == nil && other != lib.ID:
			target, err := tx.Library(other)
			if err != nil {
				return err
			}
			if noReplace {
				return errorf(KindAlreadyExists, "library %q already exists", target.Name)
			}
			if err := deleteLibraryIfEmptyTx(tx, target); err != nil {
				return err
			}
			gone = append(gone, Change{Library: target.Name, Gone: true})
		case err != nil && !errors.Is(err, meta.ErrNotFound):
			return err
		}
		gone = append(gone, Change{Library: lib.Name, Gone: true})
		lib.Name = newName // PutLibrary moves the name index
		now := m.now()
		lib.Version++
		lib.LastModifiedTime = now
		lib.Attr.Ctime = now
		return tx.PutLibrary(lib)
	})
	if err != nil {
		return err
	}
	for _, c := range gone {
		m.notify(c)
	}
	return nil
}

// RenameItem renames the item named oldName of a library to newName.
func (m *Manager) RenameItem(ctx context.Context, libraryID, oldName, newName string, noReplace bool) error {
	if err := m.refuseIfReadOnly("rename library item"); err != nil {
		return err
	}
	if err := validateItemName(newName); err != nil {
		return err
	}
	var gone []Change
	var drop []meta.ContentKey
	var ended []endedSession
	err := m.updateNamespace(ctx, func(tx *meta.Tx) error {
		gone, drop, ended = nil, nil, nil
		lib, err := m.libraryRec(tx, libraryID)
		if err != nil {
			return err
		}
		n, err := tx.ItemIDByName(lib.ID, oldName)
		if errors.Is(err, meta.ErrNotFound) {
			return errorf(KindNotFound, "item %s/%s not found", lib.Name, oldName)
		}
		if err != nil {
			return err
		}
		it, err := tx.Item(n)
		if err != nil {
			return err
		}
		if oldName == newName {
			return nil
		}
		other, err := tx.ItemIDByName(lib.ID, newName)
		switch {
		case err == nil && other != it.ID:
			target, err := tx.Item(other)
			if err != nil {
				return err
			}
			if noReplace {
				return errorf(KindAlreadyExists, "item %s/%s already exists", lib.Name, target.Name)
			}
			if err := m.checkItemEmptyTx(tx, target); err != nil {
				return err
			}
			if drop, ended, _, err = m.deleteItemTx(tx, target); err != nil { // empty: never large
				return err
			}
			gone = append(gone, Change{Library: lib.Name, Item: target.Name, Gone: true})
		case err != nil && !errors.Is(err, meta.ErrNotFound):
			return err
		}
		gone = append(gone, Change{Library: lib.Name, Item: it.Name, Gone: true})
		it.Name = newName // PutItem moves the name index
		now := m.now()
		it.Version++
		it.MetadataVersion++
		it.LastModifiedTime = now
		it.Attr.Ctime = now
		return tx.PutItem(it)
	})
	if err != nil {
		return err
	}
	m.afterEnd(ctx, ended)
	m.freeBlobs(ctx, drop)
	for _, c := range gone {
		m.notify(c)
	}
	return nil
}
