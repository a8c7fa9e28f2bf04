package api

import (
	"context"
	"os"

	"clfs/sessionmgr"
)

// ServerInfo is what the info operation answers.
type ServerInfo struct {
	Home string `json:"home"`
	PID  int    `json:"pid"`
}

// Info is a clfs extension: which home the daemon serves, and its pid.
var Info = define("clfs.info",
	Route{Method: "GET", Path: clfsPrefix + "/info"},
	func(ctx context.Context, m *sessionmgr.Manager, _ *None) (ServerInfo, error) {
		return ServerInfo{Home: m.Home(), PID: os.Getpid()}, nil
	})

// Nodes is a clfs extension: the daemons that have the catalog open, with
// their heartbeats and ACTIVE sessions (`clfs status`).
var Nodes = define("clfs.nodes",
	Route{Method: "GET", Path: clfsPrefix + "/nodes"},
	func(ctx context.Context, m *sessionmgr.Manager, _ *None) ([]sessionmgr.NodeInfo, error) {
		return m.Nodes(ctx)
	})

// Operations is the table: every operation the API serves but the data
// plane (data.go) and fsck (fsck.go), whose answers stream.
var Operations = []Operation{
	ListLibraries, LibraryByName, ListLocalLibraries, FindLibraries,
	GetLibrary, GetLocalLibrary, UpdateLibrary, UpdateLocalLibrary,
	CreateLibrary, DeleteLibrary,

	ListItems, ItemByName, CreateItem, FindItems, GetItem, UpdateItem, DeleteItem,
	ListFiles, GetFile, ListStorage, GetStorage,

	ListUpdateSessions, CreateUpdateSession, GetUpdateSession, UpdateUpdateSession,
	DeleteUpdateSession, CompleteUpdateSession, CancelUpdateSession,
	FailUpdateSession, KeepAliveUpdateSession,
	ListUpdateSessionFiles, ProbeTransferEndpoint, AddFile, GetUpdateSessionFile,
	RemoveUpdateSessionFile, ValidateUpdateSession,

	ListDownloadSessions, CreateDownloadSession, GetDownloadSession,
	DeleteDownloadSession, CancelDownloadSession, FailDownloadSession,
	KeepAliveDownloadSession,
	ListDownloadSessionFiles, GetDownloadSessionFile, PrepareDownloadSessionFile,

	Info, Nodes,
}
