package api

import (
	"context"

	"clfs/sessionmgr"
)

// The operations on items, their files and their storage (spec §3-§5).

type ItemsOf struct {
	LibraryID string `rest:"query=library_id" api:"query=library_id"`
}

type ItemName struct {
	LibraryID string `rest:"query=library_id" api:"query=library_id"`
	Name      string `rest:"query=name" api:"query=name"`
}

type ItemCreate struct {
	Spec        sessionmgr.ItemCreateSpec `json:"create_spec" api:"body"`
	ClientToken string                    `json:"client_token,omitempty" api:"header=Client-Token"`
}

type ItemFind struct {
	Spec sessionmgr.ItemFindSpec `json:"spec" api:"body"`
}

type ItemUpdate struct {
	ID   string                    `rest:"id" api:"path=id"`
	Spec sessionmgr.ItemUpdateSpec `json:"update_spec" api:"body"`
}

// FilesOf names an item whose files or storage are listed.
type FilesOf struct {
	ItemID string `rest:"query=library_item_id" api:"path=id"`
}

type FileOf struct {
	ItemID string `rest:"id" api:"path=id"`
	Name   string `json:"name" api:"query=name"`
}

type StorageOf struct {
	ItemID   string `rest:"id" api:"path=id"`
	FileName string `json:"file_name" api:"query=file_name"`
}

var (
	ListItems = define("library.item.list",
		Route{Method: "GET", Path: "library/item"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ItemsOf) ([]sessionmgr.Item, error) {
			return m.ListItems(ctx, in.LibraryID)
		},
		Route{Method: "GET", Path: "library/item"}).listing()

	// ItemByName is a clfs extension, as LibraryByName.
	ItemByName = define("library.item.get_by_name",
		Route{Method: "GET", Path: "library/item", Has: "name"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ItemName) (*sessionmgr.Item, error) {
			return m.ItemByName(ctx, in.LibraryID, in.Name)
		},
		Route{Method: "GET", Path: "library/item", Has: "name"})

	CreateItem = define("library.item.create",
		Route{Method: "POST", Path: "library/item"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ItemCreate) (string, error) {
			return m.CreateItem(ctx, in.Spec, in.ClientToken)
		},
		Route{Method: "POST", Path: "library/item"}).creating()

	FindItems = define("library.item.find",
		Route{Method: "POST", Path: "library/item", Action: "find"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ItemFind) ([]string, error) {
			return m.FindItems(ctx, in.Spec)
		},
		Route{Method: "POST", Path: "library/item", Action: "find"})

	GetItem = define("library.item.get",
		Route{Method: "GET", Path: "library/item/{id}"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ByID) (*sessionmgr.Item, error) {
			return m.GetItem(ctx, in.ID)
		},
		Route{Method: "GET", Path: "library/item/{id}"})

	UpdateItem = define("library.item.update",
		Route{Method: "PATCH", Path: "library/item/{id}"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ItemUpdate) (NoResult, error) {
			return NoResult{}, m.UpdateItem(ctx, in.ID, in.Spec)
		},
		Route{Method: "PATCH", Path: "library/item/{id}"})

	DeleteItem = define("library.item.delete",
		Route{Method: "DELETE", Path: "library/item/{id}"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ByID) (NoResult, error) {
			return NoResult{}, m.DeleteItem(ctx, in.ID)
		},
		Route{Method: "DELETE", Path: "library/item/{id}"})

	ListFiles = define("library.item.file.list",
		Route{Method: "GET", Path: "library/item/file"},
		func(ctx context.Context, m *sessionmgr.Manager, in *FilesOf) ([]sessionmgr.File, error) {
			return m.ListFiles(ctx, in.ItemID)
		},
		Route{Method: "GET", Path: "library/item/{id}/file"})

	GetFile = define("library.item.file.get",
		Route{Method: "POST", Path: "library/item/file/{id}", Action: "get"},
		func(ctx context.Context, m *sessionmgr.Manager, in *FileOf) (*sessionmgr.File, error) {
			return m.GetFile(ctx, in.ItemID, in.Name)
		},
		Route{Method: "GET", Path: "library/item/{id}/file", Has: "name"})

	ListStorage = define("library.item.storage.list",
		Route{Method: "GET", Path: "library/item/storage"},
		func(ctx context.Context, m *sessionmgr.Manager, in *FilesOf) ([]sessionmgr.Storage, error) {
			return m.ListStorage(ctx, in.ItemID)
		},
		Route{Method: "GET", Path: "library/item/{id}/storage"})

	GetStorage = define("library.item.storage.get",
		Route{Method: "POST", Path: "library/item/storage/{id}", Action: "get"},
		func(ctx context.Context, m *sessionmgr.Manager, in *StorageOf) ([]sessionmgr.Storage, error) {
			return m.GetStorage(ctx, in.ItemID, in.FileName)
		},
		Route{Method: "GET", Path: "library/item/{id}/storage", Has: "file_name"})
)
