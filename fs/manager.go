package fs

import (
	"context"

	"clfs/sessionmgr"
)

// Manager is what the filesystem needs of the session manager: exactly
// the calls its nodes make, and nothing that bypasses the API's rules.
// *sessionmgr.Manager implements it; the behaviour suite
// (behaviour_test.go) drives it directly and through a mount of the
// filesystem over it, and must see the same.
type Manager interface {
	// Libraries: the directories at the root.
	ListLibraries(ctx context.Context) ([]sessionmgr.Library, error)
	LibraryByName(ctx context.Context, name string) (*sessionmgr.Library, error)
	GetLibrary(ctx context.Context, id string) (*sessionmgr.Library, error)
	// LibraryAttributes and ItemAttributes answer GETATTR: on a shared
	// catalog they may be a few milliseconds behind other nodes.
	LibraryAttributes(ctx context.Context, id string) (*sessionmgr.Library, error)
	CreateLibrary(ctx context.Context, spec sessionmgr.LibraryCreateSpec, clientToken string) (string, error)
	SetLibraryPosix(ctx context.Context, id string, set sessionmgr.PosixChange) error
	RenameLibrary(ctx context.Context, oldName, newName string, noReplace bool) error
	DeleteLibraryIfEmpty(ctx context.Context, id string) error

	// Items: the directories in a library.
	ListItems(ctx context.Context, libraryID string) ([]sessionmgr.Item, error)
	ItemByName(ctx context.Context, libraryID, name string) (*sessionmgr.Item, error)
	GetItem(ctx context.Context, id string) (*sessionmgr.Item, error)
	ItemAttributes(ctx context.Context, id string) (*sessionmgr.Item, error)
	CreateItem(ctx context.Context, spec sessionmgr.ItemCreateSpec, clientToken string) (string, error)
	SetItemPosix(ctx context.Context, id string, set sessionmgr.PosixChange) error
	RenameItem(ctx context.Context, libraryID, oldName, newName string, noReplace bool) error
	DeleteItemIfEmpty(ctx context.Context, id string) error

	// Files of an item, committed or pending (sessionmgr.Draft).
	ItemEntries(ctx context.Context, itemID string) ([]sessionmgr.FileEntry, error)
	ItemEntry(ctx context.Context, itemID, name string) (*sessionmgr.FileEntry, error)
	CreateFile(ctx context.Context, itemID, name string, p sessionmgr.Posix) (*sessionmgr.Draft, error)
	OpenDraft(ctx context.Context, itemID, name string) (*sessionmgr.Draft, error)
	OpenFileReader(ctx context.Context, itemID, name string) (*sessionmgr.FileReader, error)
	RenameFile(ctx context.Context, itemID, oldName, newName string, noReplace bool) error
	RemoveFile(ctx context.Context, itemID, name string) error
	FileXattr(ctx context.Context, itemID, name, attr string) ([]byte, error)

	// The mount as a whole.
	StorageStats(ctx context.Context) (*sessionmgr.StorageStats, error)
	// Sync makes every namespace change made so far durable (fsync,
	// fsyncdir); they are ordered at once, and durable within a second
	// without it.
	Sync(ctx context.Context) error
	// Subscribe reports changes made by any client, for the kernel's
	// caches (invalidate.go).
	Subscribe(fn func(sessionmgr.Change))
}

var _ Manager = (*sessionmgr.Manager)(nil)
