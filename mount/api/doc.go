// Package api is the session manager's HTTP face: one table of
// operations from which every front end is built.
//
// Each operation of the content library API is described once, in the
// table (Operations; library.go, item.go, update_session.go,
// download_session.go): its vAPI name, how the /rest dialect spells it
// (method, path, ~action), how the /api dialect spells it, the types of
// its input and output, and the session manager call that does it. From
// that one description come
//
//   - the /rest routes (router.go) and the /api routes, a second spelling
//     decoded and encoded by its own rules (ids in the path, ?action=, the
//     spec as the body, Client-Token header, bare results, 201 and 204),
//     not a replay of /rest;
//   - the requests of the clients (EncodeRest; control.Client sends them
//     over the control socket);
//   - Call, which runs an operation in this process (Local) or through a
//     client, typed.
//
// Adding an operation is therefore two steps: the session manager's
// method, and one entry of the table (with the CLI command that uses it,
// if any). TestOperationTable walks the table and reaches every operation
// through the client, /rest and /api.
//
// The data plane (data.go) and fsck (fsck.go) stream, so they are
// handlers of their own beside the table.
//
// One Handler serves both listeners with two option sets (Options): the
// control socket (the socket checks its peers; lists answer models) and
// the HTTPS listener (Public: logins, transfer keys, /api and /sdk, lists
// answer ids). Server runs a handler on a listener and waits, at Close,
// for the requests in flight. Listen binds the HTTPS listener with its
// certificate (tls.go); logins.go keeps its logins; the govc SOAP endpoint
// is the sub-package soap.
//
// Errors travel as the vSphere error types with the HTTP status of spec
// §0.2 (wire.go); EncodeError and DecodeError are exact inverses, so a
// client rebuilds the very *sessionmgr.Error the manager returned.
package api
