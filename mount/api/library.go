package api

import (
	"context"

	"clfs/sessionmgr"
)

// The operations on libraries (spec §1, §2).

// None is the input of an operation without parameters.
type None struct{}

// ByID is the input of an operation on one resource named by its id.
type ByID struct {
	ID string `rest:"id" api:"path=id"`
}

type LibraryName struct {
	Name string `rest:"query=name" api:"query=name"`
}

type LibraryFind struct {
	Spec sessionmgr.LibraryFindSpec `json:"spec" api:"body"`
}

type LibraryUpdate struct {
	ID   string                       `rest:"id" api:"path=id"`
	Spec sessionmgr.LibraryUpdateSpec `json:"update_spec" api:"body"`
}

type LibraryCreate struct {
	Spec        sessionmgr.LibraryCreateSpec `json:"create_spec" api:"body"`
	ClientToken string                       `json:"client_token,omitempty" api:"header=Client-Token"`
}

var (
	ListLibraries = define("library.list",
		Route{Method: "GET", Path: "library"},
		func(ctx context.Context, m *sessionmgr.Manager, _ *None) ([]sessionmgr.Library, error) {
			return m.ListLibraries(ctx)
		},
		Route{Method: "GET", Path: "library"}).listing()

	// LibraryByName is a clfs extension: the library of a name, in one
	// call and one view of the catalog.
	LibraryByName = define("library.get_by_name",
		Route{Method: "GET", Path: "library", Has: "name"},
		func(ctx context.Context, m *sessionmgr.Manager, in *LibraryName) (*sessionmgr.Library, error) {
			return m.LibraryByName(ctx, in.Name)
		},
		Route{Method: "GET", Path: "library", Has: "name"})

	ListLocalLibraries = define("local_library.list",
		Route{Method: "GET", Path: "local-library"},
		func(ctx context.Context, m *sessionmgr.Manager, _ *None) ([]sessionmgr.Library, error) {
			return m.ListLibraries(ctx)
		},
		Route{Method: "GET", Path: "local-library"}).listing()

	FindLibraries = define("library.find",
		Route{Method: "POST", Path: "library", Action: "find"},
		func(ctx context.Context, m *sessionmgr.Manager, in *LibraryFind) ([]string, error) {
			return m.FindLibraries(ctx, in.Spec)
		},
		Route{Method: "POST", Path: "library", Action: "find"})

	GetLibrary = define("library.get",
		Route{Method: "GET", Path: "library/{id}"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ByID) (*sessionmgr.Library, error) {
			return m.GetLibrary(ctx, in.ID)
		},
		Route{Method: "GET", Path: "library/{id}"})

	GetLocalLibrary = define("local_library.get",
		Route{Method: "GET", Path: "local-library/{id}"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ByID) (*sessionmgr.Library, error) {
			return m.GetLibrary(ctx, in.ID)
		},
		Route{Method: "GET", Path: "local-library/{id}"})

	UpdateLibrary = define("library.update",
		Route{Method: "PATCH", Path: "library/{id}"},
		func(ctx context.Context, m *sessionmgr.Manager, in *LibraryUpdate) (NoResult, error) {
			return NoResult{}, m.UpdateLibrary(ctx, in.ID, in.Spec)
		},
		Route{Method: "PATCH", Path: "library/{id}"})

	UpdateLocalLibrary = define("local_library.update",
		Route{Method: "PATCH", Path: "local-library/{id}"},
		func(ctx context.Context, m *sessionmgr.Manager, in *LibraryUpdate) (NoResult, error) {
			return NoResult{}, m.UpdateLibrary(ctx, in.ID, in.Spec)
		},
		Route{Method: "PATCH", Path: "local-library/{id}"})

	CreateLibrary = define("local_library.create",
		Route{Method: "POST", Path: "local-library"},
		func(ctx context.Context, m *sessionmgr.Manager, in *LibraryCreate) (string, error) {
			return m.CreateLibrary(ctx, in.Spec, in.ClientToken)
		},
		Route{Method: "POST", Path: "local-library"}).creating()

	DeleteLibrary = define("local_library.delete",
		Route{Method: "DELETE", Path: "local-library/{id}"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ByID) (NoResult, error) {
			return NoResult{}, m.DeleteLibrary(ctx, in.ID)
		},
		Route{Method: "DELETE", Path: "local-library/{id}"})
)
