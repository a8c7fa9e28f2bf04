package api

import (
	"context"

	"clfs/sessionmgr"
)

// The operations on update sessions and their files (spec §6, §7).

// SessionsOf filters a list of sessions by item; empty lists them all.
type SessionsOf struct {
	ItemID string `rest:"query=library_item_id" api:"query=library_item_id"`
}

type UpdateSessionCreate struct {
	Spec        sessionmgr.UpdateSessionCreateSpec `json:"create_spec" api:"body"`
	ClientToken string                             `json:"client_token,omitempty" api:"header=Client-Token"`
}

type UpdateSessionUpdate struct {
	ID   string                             `rest:"id" api:"path=id"`
	Spec sessionmgr.UpdateSessionUpdateSpec `json:"update_spec" api:"body"`
}

type UpdateSessionKeepAlive struct {
	ID       string `rest:"id" api:"path=id"`
	Progress *int64 `json:"client_progress,omitempty"`
}

// SessionFail fails a session of either kind with the client's message.
type SessionFail struct {
	ID      string `rest:"id" api:"path=id"`
	Message string `json:"client_error_message"`
}

type UpdateSessionFilesOf struct {
	SessionID string `rest:"query=update_session_id" api:"path=id"`
}

type FileAdd struct {
	SessionID string                 `rest:"id" api:"path=id"`
	Spec      sessionmgr.FileAddSpec `json:"file_spec" api:"body"`
}

// UpdateSessionFileOf names a file of an update session. /api spells it
// in the path (…/file/{name}) and, as the download session's, in the
// query (…/file?file_name=).
type UpdateSessionFileOf struct {
	SessionID string `rest:"id" api:"path=id"`
	FileName  string `json:"file_name" api:"path=name|query=file_name"`
}

type Probe struct {
	Endpoint sessionmgr.TransferEndpoint `json:"source_endpoint"`
}

var (
	ListUpdateSessions = define("library.item.update_session.list",
		Route{Method: "GET", Path: "library/item/update-session"},
		func(ctx context.Context, m *sessionmgr.Manager, in *SessionsOf) ([]sessionmgr.UpdateSession, error) {
			return m.ListUpdateSessions(ctx, in.ItemID)
		},
		Route{Method: "GET", Path: "library/item/update-session"}).listing()

	CreateUpdateSession = define("library.item.update_session.create",
		Route{Method: "POST", Path: "library/item/update-session"},
		func(ctx context.Context, m *sessionmgr.Manager, in *UpdateSessionCreate) (string, error) {
			return m.CreateUpdateSession(ctx, in.Spec, in.ClientToken)
		},
		Route{Method: "POST", Path: "library/item/update-session"}).creating()

	GetUpdateSession = define("library.item.update_session.get",
		Route{Method: "GET", Path: "library/item/update-session/{id}"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ByID) (*sessionmgr.UpdateSession, error) {
			return m.GetUpdateSession(ctx, in.ID)
		},
		Route{Method: "GET", Path: "library/item/update-session/{id}"})

	UpdateUpdateSession = define("library.item.update_session.update",
		Route{Method: "PATCH", Path: "library/item/update-session/{id}"},
		func(ctx context.Context, m *sessionmgr.Manager, in *UpdateSessionUpdate) (NoResult, error) {
			return NoResult{}, m.UpdateUpdateSession(ctx, in.ID, in.Spec)
		},
		Route{Method: "PATCH", Path: "library/item/update-session/{id}"})

	DeleteUpdateSession = define("library.item.update_session.delete",
		Route{Method: "DELETE", Path: "library/item/update-session/{id}"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ByID) (NoResult, error) {
			return NoResult{}, m.DeleteUpdateSession(ctx, in.ID)
		},
		Route{Method: "DELETE", Path: "library/item/update-session/{id}"})

	CompleteUpdateSession = define("library.item.update_session.complete",
		Route{Method: "POST", Path: "library/item/update-session/{id}", Action: "complete"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ByID) (NoResult, error) {
			return NoResult{}, m.CompleteUpdateSession(ctx, in.ID)
		},
		Route{Method: "POST", Path: "library/item/update-session/{id}", Action: "complete"})

	CancelUpdateSession = define("library.item.update_session.cancel",
		Route{Method: "POST", Path: "library/item/update-session/{id}", Action: "cancel"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ByID) (NoResult, error) {
			return NoResult{}, m.CancelUpdateSession(ctx, in.ID)
		},
		Route{Method: "POST", Path: "library/item/update-session/{id}", Action: "cancel"})

	FailUpdateSession = define("library.item.update_session.fail",
		Route{Method: "POST", Path: "library/item/update-session/{id}", Action: "fail"},
		func(ctx context.Context, m *sessionmgr.Manager, in *SessionFail) (NoResult, error) {
			return NoResult{}, m.FailUpdateSession(ctx, in.ID, in.Message)
		},
		Route{Method: "POST", Path: "library/item/update-session/{id}", Action: "fail"})

	KeepAliveUpdateSession = define("library.item.update_session.keep_alive",
		Route{Method: "POST", Path: "library/item/update-session/{id}", Action: "keep-alive"},
		func(ctx context.Context, m *sessionmgr.Manager, in *UpdateSessionKeepAlive) (NoResult, error) {
			return NoResult{}, m.KeepAliveUpdateSession(ctx, in.ID, in.Progress)
		},
		Route{Method: "POST", Path: "library/item/update-session/{id}", Action: "keep-alive"})

	ListUpdateSessionFiles = define("library.item.updatesession.file.list",
		Route{Method: "GET", Path: "library/item/updatesession/file"},
		func(ctx context.Context, m *sessionmgr.Manager, in *UpdateSessionFilesOf) ([]sessionmgr.UpdateSessionFile, error) {
			return m.ListSessionFiles(ctx, in.SessionID)
		},
		Route{Method: "GET", Path: "library/item/update-session/{id}/file"})

	// ProbeTransferEndpoint has no /api form in the API's documentation.
	ProbeTransferEndpoint = define("library.item.updatesession.file.probe",
		Route{Method: "POST", Path: "library/item/updatesession/file", Action: "probe"},
		func(ctx context.Context, m *sessionmgr.Manager, in *Probe) (*sessionmgr.ProbeResult, error) {
			return m.ProbeTransferEndpoint(ctx, in.Endpoint)
		})

	AddFile = define("library.item.updatesession.file.add",
		Route{Method: "POST", Path: "library/item/updatesession/file/{id}", Action: "add"},
		func(ctx context.Context, m *sessionmgr.Manager, in *FileAdd) (*sessionmgr.UpdateSessionFile, error) {
			return m.AddFile(ctx, in.SessionID, in.Spec)
		},
		Route{Method: "POST", Path: "library/item/update-session/{id}/file"})

	GetUpdateSessionFile = define("library.item.updatesession.file.get",
		Route{Method: "POST", Path: "library/item/updatesession/file/{id}", Action: "get"},
		func(ctx context.Context, m *sessionmgr.Manager, in *UpdateSessionFileOf) (*sessionmgr.UpdateSessionFile, error) {
			return m.GetSessionFile(ctx, in.SessionID, in.FileName)
		},
		Route{Method: "GET", Path: "library/item/update-session/{id}/file/{name}"},
		Route{Method: "GET", Path: "library/item/update-session/{id}/file", Has: "file_name"})

	RemoveUpdateSessionFile = define("library.item.updatesession.file.remove",
		Route{Method: "POST", Path: "library/item/updatesession/file/{id}", Action: "remove"},
		func(ctx context.Context, m *sessionmgr.Manager, in *UpdateSessionFileOf) (NoResult, error) {
			return NoResult{}, m.RemoveSessionFile(ctx, in.SessionID, in.FileName)
		},
		Route{Method: "DELETE", Path: "library/item/update-session/{id}/file/{name}"})

	ValidateUpdateSession = define("library.item.updatesession.file.validate",
		Route{Method: "POST", Path: "library/item/updatesession/file/{id}", Action: "validate"},
		func(ctx context.Context, m *sessionmgr.Manager, in *ByID) (*sessionmgr.ValidationResult, error) {
			return m.ValidateUpdateSession(ctx, in.ID)
		},
		Route{Method: "POST", Path: "library/item/update-session/{id}/file", Action: "validate"})
)
