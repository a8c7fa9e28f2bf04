package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"clfs/sessionmgr"
)

// The data plane: the bytes of update and download session files, which
// stream and so are not operations of the table.
//
//	PUT /clfs/data/update-session/{id}/{file}    a PUSH file; answers its updatesession file info
//	GET /clfs/data/download-session/{id}/{file}  a prepared file (Range requests welcome)

// serveData routes a data plane request.
func (h *Handler) serveData(w http.ResponseWriter, r *http.Request) {
	kind, sessionID, name, err := parseDataPath(r.URL.EscapedPath())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	switch {
	case kind == "update-session" && r.Method == http.MethodPut:
		h.upload(w, r, sessionID, name)
	case kind == "download-session" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		h.download(w, r, sessionID, name)
	default:
		h.fail(w, r, &sessionmgr.Error{Kind: sessionmgr.KindNotFound, Msg: fmt.Sprintf("no operation %s %s", r.Method, r.URL.Path)})
	}
}

// parseDataPath is the inverse of DataPath, on an escaped path.
func parseDataPath(escaped string) (kind, sessionID, name string, err error) {
	parts := strings.Split(strings.TrimPrefix(escaped, dataPrefix), "/")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return "", "", "", &sessionmgr.Error{Kind: sessionmgr.KindNotFound, Msg: fmt.Sprintf("no operation at %s: want %s{update-session|download-session}/{id}/{file}", escaped, dataPrefix)}
	}
	sessionID, err1 := url.PathUnescape(parts[1])
	name, err2 := url.PathUnescape(parts[2])
	if err := errors.Join(err1, err2); err != nil {
		return "", "", "", &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("path %q: %v", escaped, err)}
	}
	return parts[0], sessionID, name, nil
}

// upload streams a request body into a PUSH file of an update session and
// finishes it: the answer is the file's info, or why it was refused (size
// or checksum mismatch). A client that sent "Expect: 100-continue" learns
// of a refusal at open before sending any byte.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request, sessionID, name string) {
	ctx := r.Context()
	opts := sessionmgr.UploadOptions{FromCommitted: r.URL.Query().Get(fromCommitted) == "true"}
	sf, err := h.m.OpenUpload(ctx, sessionID, name, opts)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer sf.Close()
	if n, err := sf.ReadFrom(r.Body); err != nil {
		// The file must not become READY from part of a body: it
		// goes to ERROR, and the client adds it again.
		if !errors.Is(err, sessionmgr.ErrSizeMismatch) && sessionmgr.KindOf(err) == sessionmgr.KindError {
			err = fmt.Errorf("upload of %q broke after %d bytes: %w", sf.Name(), n, err)
		}
		sf.Abort(context.WithoutCancel(ctx), err)
		h.fail(w, r, err)
		return
	}
	info, err := sf.Finish(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, valueBody{info})
}

// download serves a file of a download session, Range requests included;
// the content is read from the pinned version as it is sent.
func (h *Handler) download(w http.ResponseWriter, r *http.Request, sessionID, name string) {
	rd, err := h.m.OpenDownload(r.Context(), sessionID, name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer rd.Close()
	// Set, so that ServeContent does not read the content to sniff it.
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(rd, 0, rd.Size()))
}
