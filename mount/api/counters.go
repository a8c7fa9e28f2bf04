package api

import (
	"net/http"

	"clfs/sessionmgr"
)

// The FUSE request counters are the daemon's, not the session manager's,
// so they are not an operation of the table: the daemon hands the handler
// a function (Options.Counters), and the API never knows the filesystem.
//
//	GET /clfs/counters   {"value": {"LOOKUP": 12, "CREATE": 1, ...}}
//
// A daemon without a mount (clfs serve) answers Unsupported.

// CountersRequest is the request of the FUSE request counters.
func CountersRequest() RestRequest {
	return RestRequest{Method: http.MethodGet, Path: countersPath}
}

func (h *Handler) counters(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		h.fail(w, r, &sessionmgr.Error{Kind: sessionmgr.KindNotFound, Msg: "no operation " + r.Method + " " + r.URL.Path})
		return
	}
	if h.countersFn == nil {
		h.fail(w, r, &sessionmgr.Error{Kind: sessionmgr.KindUnsupported, Msg: "this daemon serves no mount: no FUSE request counters"})
		return
	}
	writeJSON(w, http.StatusOK, valueBody{h.countersFn()})
}
