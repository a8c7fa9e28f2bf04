package main

import (
	"context"
	"io"

	"clfs/mount"
	"clfs/sessionmgr"
)

// api is the content library item API as the commands use it: the
// session manager opened on the home directory (localAPI), or, while a
// mount holds the home, a client of its control socket (remoteAPI). The
// commands must not rely on anything but these methods.
type api interface {
	Close() error

	CreateLibrary(ctx context.Context, spec sessionmgr.LibraryCreateSpec, clientToken string) (string, error)
	GetLibrary(ctx context.Context, id string) (*sessionmgr.Library, error)
	LibraryByName(ctx context.Context, name string) (*sessionmgr.Library, error)
	ListLibraries(ctx context.Context) ([]sessionmgr.Library, error)
	DeleteLibrary(ctx context.Context, id string) error

	CreateItem(ctx context.Context, spec sessionmgr.ItemCreateSpec, clientToken string) (string, error)
	GetItem(ctx context.Context, id string) (*sessionmgr.Item, error)
	ItemByName(ctx context.Context, libraryID, name string) (*sessionmgr.Item, error)
	ListItems(ctx context.Context, libraryID string) ([]sessionmgr.Item, error)
	DeleteItem(ctx context.Context, id string) error

	ListFiles(ctx context.Context, itemID string) ([]sessionmgr.File, error)
	GetFile(ctx context.Context, itemID, name string) (*sessionmgr.File, error)
	ListStorage(ctx context.Context, itemID string) ([]sessionmgr.Storage, error)

	CreateUpdateSession(ctx context.Context, spec sessionmgr.UpdateSessionCreateSpec, clientToken string) (string, error)
	GetUpdateSession(ctx context.Context, id string) (*sessionmgr.UpdateSession, error)
	ListUpdateSessions(ctx context.Context, itemID string) ([]sessionmgr.UpdateSession, error)
	KeepAliveUpdateSession(ctx context.Context, id string, progress *int64) error
	CancelUpdateSession(ctx context.Context, id string) error
	FailUpdateSession(ctx context.Context, id, message string) error
	DeleteUpdateSession(ctx context.Context, id string) error
	CompleteUpdateSession(ctx context.Context, id string) error
	AddFile(ctx context.Context, sessionID string, spec sessionmgr.FileAddSpec) (*sessionmgr.UpdateSessionFile, error)
	OpenUpload(ctx context.Context, sessionID, name string, opts sessionmgr.UploadOptions) (upload, error)

	CreateDownloadSession(ctx context.Context, spec sessionmgr.DownloadSessionCreateSpec, clientToken string) (string, error)
	GetDownloadSession(ctx context.Context, id string) (*sessionmgr.DownloadSession, error)
	ListDownloadSessions(ctx context.Context, itemID string) ([]sessionmgr.DownloadSession, error)
	KeepAliveDownloadSession(ctx context.Context, id string, progress *int64) error
	CancelDownloadSession(ctx context.Context, id string) error
	FailDownloadSession(ctx context.Context, id, message string) error
	DeleteDownloadSession(ctx context.Context, id string) error
	ListDownloadFiles(ctx context.Context, id string) ([]sessionmgr.DownloadSessionFile, error)
	OpenDownload(ctx context.Context, id, name string) (download, error)

	Fsck(ctx context.Context, progress func(done, total int64)) (*sessionmgr.FsckReport, error)
}

// upload is the data plane of one PUSH file of an update session
// (*sessionmgr.StagedFile locally).
type upload interface {
	io.ReaderFrom
	Finish(ctx context.Context) (*sessionmgr.UpdateSessionFile, error)
	Close() error
}

// download is the data plane of one file of a download session
// (*sessionmgr.DownloadReader locally).
type download interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// localAPI drives the session manager in this process: the catalog is
// opened directly, which Badger allows to one process at a time.
type localAPI struct {
	*sessionmgr.Manager
}

var _ api = localAPI{}

func (a localAPI) OpenUpload(ctx context.Context, sessionID, name string, opts sessionmgr.UploadOptions) (upload, error) {
	sf, err := a.Manager.OpenUpload(ctx, sessionID, name, opts)
	if err != nil {
		return nil, err
	}
	return sf, nil
}

func (a localAPI) OpenDownload(ctx context.Context, id, name string) (download, error) {
	r, err := a.Manager.OpenDownload(ctx, id, name)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// remoteAPI drives the session manager of a running mount through its
// control socket.
type remoteAPI struct {
	*mount.Client
}

var _ api = remoteAPI{}

func (a remoteAPI) OpenUpload(ctx context.Context, sessionID, name string, opts sessionmgr.UploadOptions) (upload, error) {
	u, err := a.Client.OpenUpload(ctx, sessionID, name, opts)
	if err != nil {
		return nil, err
	}
	return u, nil
}

func (a remoteAPI) OpenDownload(ctx context.Context, id, name string) (download, error) {
	d, err := a.Client.OpenDownload(ctx, id, name)
	if err != nil {
		return nil, err
	}
	return d, nil
}
