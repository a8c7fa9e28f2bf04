package main

import (
	"context"
	"io"

	"clfs/mount/api"
	"clfs/mount/control"
	"clfs/sessionmgr"
)

// service is the content library item API as the commands use it: the
// session manager opened on the home directory (localService), or, while
// a daemon holds the home, a client of its control socket
// (remoteService). The operations of the table (package api) run through
// either with api.Call; the data plane and fsck stream, so they are
// methods of their own.
type service interface {
	api.Caller
	Close() error

	OpenUpload(ctx context.Context, sessionID, name string, opts sessionmgr.UploadOptions) (upload, error)
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

// localService drives the session manager in this process: the catalog
// is opened directly, which Badger allows to one process at a time.
type localService struct {
	api.Local
}

var _ service = localService{}

func (a localService) Close() error { return a.M.Close() }

func (a localService) Fsck(ctx context.Context, progress func(done, total int64)) (*sessionmgr.FsckReport, error) {
	return a.M.Fsck(ctx, progress)
}

func (a localService) OpenUpload(ctx context.Context, sessionID, name string, opts sessionmgr.UploadOptions) (upload, error) {
	sf, err := a.M.OpenUpload(ctx, sessionID, name, opts)
	if err != nil {
		return nil, err
	}
	return sf, nil
}

func (a localService) OpenDownload(ctx context.Context, id, name string) (download, error) {
	r, err := a.M.OpenDownload(ctx, id, name)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// remoteService drives the session manager of a running daemon through
// its control socket.
type remoteService struct {
	*control.Client
}

var _ service = remoteService{}

func (a remoteService) OpenUpload(ctx context.Context, sessionID, name string, opts sessionmgr.UploadOptions) (upload, error) {
	u, err := a.Client.OpenUpload(ctx, sessionID, name, opts)
	if err != nil {
		return nil, err
	}
	return u, nil
}

func (a remoteService) OpenDownload(ctx context.Context, id, name string) (download, error) {
	d, err := a.Client.OpenDownload(ctx, id, name)
	if err != nil {
		return nil, err
	}
	return d, nil
}
