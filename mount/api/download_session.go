package api

import (
	"context"

	"clfs/sessionmgr"
)

// The operations on download sessions and their files (spec §8).

type DownloadSessionCreate struct {
	Spec        sessionmgr.DownloadSessionCreateSpec `json:"create_spec" api:"body"`
	ClientToken string                               `json:"client_token,omitempty" api:"header=Client-Token"`
}

type DownloadSessionKeepAlive struct {
	ID string `rest:"id" api:"path=id"`
	// Progress is "progress", not "client_progress" (spec §8.3).
	Progress *int64 `json:"progress,omitempty"`
}

type DownloadSessionFilesOf struct {
	SessionID string `rest:"query=download_session_id" api:"path=id"`
}

type DownloadSessionFileOf struct {
	SessionID string `rest:"id" api:"path=id"`
	FileName  string `json:"file_name" api:"query=file_name"`
}

type DownloadFilePrepare struct {
	SessionID    string `rest:"id" api:"path=id"`
	FileName     string `json:"file_name"`
	EndpointType string `json:"endpoint_type,omitempty"`
}

var (
	ListDownloadSessions = define("library.item.download_session.list",
		Route{Method: "GET", Path: "library/item/download-session"},
		func(ctx context.Context, m *sessionmgr.Manager, in *SessionsOf) ([]sessionmgr.DownloadSession, error) {
			return m.ListDownloadSessions(ctx, in.ItemID)
		},
		Route{Method: "GET", Path: "library/item/download-session"}).listing()

	CreateDownloadSession = define("library.item.download_session.create",
		Route{Method: "POST", Path: "library/item/download-session"},
		func(ctx context.Context, m *sessionmgr.Manager, in *DownloadSessionCreate) (string, error) {
			return m.CreateDownloadSession(ctx, in.Spec, in.ClientToken)
		},
		Route{Method: "POST", Path: "library/item/download-session"}).creating()

	GetDownloadSession = define("library.item.download_session.get",
		Route{Method: "GET", Path: "library/item/download-session/{id}"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ByID) (*sessionmgr.DownloadSession, error) {
			return m.GetDownloadSession(ctx, in.ID)
		},
		Route{Method: "GET", Path: "library/item/download-session/{id}"})

	DeleteDownloadSession = define("library.item.download_session.delete",
		Route{Method: "DELETE", Path: "library/item/download-session/{id}"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ByID) (NoResult, error) {
			return NoResult{}, m.DeleteDownloadSession(ctx, in.ID)
		},
		Route{Method: "DELETE", Path: "library/item/download-session/{id}"})

	CancelDownloadSession = define("library.item.download_session.cancel",
		Route{Method: "POST", Path: "library/item/download-session/{id}", Action: "cancel"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ByID) (NoResult, error) {
			return NoResult{}, m.CancelDownloadSession(ctx, in.ID)
		},
		Route{Method: "POST", Path: "library/item/download-session/{id}", Action: "cancel"})

	FailDownloadSession = define("library.item.download_session.fail",
		Route{Method: "POST", Path: "library/item/download-session/{id}", Action: "fail"},
		func(ctx context.Context, m *sessionmgr.Manager, in *SessionFail) (NoResult, error) {
			return NoResult{}, m.FailDownloadSession(ctx, in.ID, in.Message)
		},
		Route{Method: "POST", Path: "library/item/download-session/{id}", Action: "fail"})

	KeepAliveDownloadSession = define("library.item.download_session.keep_alive",
		Route{Method: "POST", Path: "library/item/download-session/{id}", Action: "keep-alive"},
		func(ctx context.Context, m *sessionmgr.Manager, in *DownloadSessionKeepAlive) (NoResult, error) {
			return NoResult{}, m.KeepAliveDownloadSession(ctx, in.ID, in.Progress)
		},
		Route{Method: "POST", Path: "library/item/download-session/{id}", Action: "keep-alive"})

	ListDownloadSessionFiles = define("library.item.downloadsession.file.list",
		Route{Method: "GET", Path: "library/item/downloadsession/file"},
		func(ctx context.Context, m *sessionmgr.Manager, in *DownloadSessionFilesOf) ([]sessionmgr.DownloadSessionFile, error) {
			return m.ListDownloadFiles(ctx, in.SessionID)
		},
		Route{Method: "GET", Path: "library/item/download-session/{id}/file"})

	GetDownloadSessionFile = define("library.item.downloadsession.file.get",
		Route{Method: "POST", Path: "library/item/downloadsession/file/{id}", Action: "get"},
		func(ctx context.Context, m *sessionmgr.Manager, in *DownloadSessionFileOf) (*sessionmgr.DownloadSessionFile, error) {
			return m.GetDownloadFile(ctx, in.SessionID, in.FileName)
		},
		Route{Method: "GET", Path: "library/item/download-session/{id}/file", Has: "file_name"})

	PrepareDownloadSessionFile = define("library.item.downloadsession.file.prepare",
		Route{Method: "POST", Path: "library/item/downloadsession/file/{id}", Action: "prepare"},
		func(ctx context.Context, m *sessionmgr.Manager, in *DownloadFilePrepare) (*sessionmgr.DownloadSessionFile, error) {
			return m.PrepareDownloadFile(ctx, in.SessionID, in.FileName, in.EndpointType)
		},
		Route{Method: "POST", Path: "library/item/download-session/{id}/file", Action: "prepare"})
)
