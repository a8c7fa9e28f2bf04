package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"

	"clfs/sessionmgr"
)

// What the server and its clients agree on: paths, bodies, errors.

const (
	// restPrefix starts the paths of the API proper: the vSphere /rest
	// surface (spec §9.2), resource and parameter names included.
	restPrefix = "/rest/com/vmware/content"
	// apiPrefix starts the /api dialect of the same (spec §9.1).
	apiPrefix = "/api/content"
	// clfsPrefix starts the clfs extensions: the data plane, fsck, info,
	// counters.
	clfsPrefix = "/clfs"
	dataPrefix = clfsPrefix + "/data/"
	fsckPath   = clfsPrefix + "/fsck"
	// countersPath answers the mount's FUSE request counters.
	countersPath = clfsPrefix + "/counters"

	actionParam   = "~action"
	progressParam = "x_progress"       // fsck: stream progress lines
	fromCommitted = "x_from_committed" // upload: start from the committed file
	ndjson        = "application/x-ndjson"
)

// DataPath is the data plane of one file of a session: kind is
// "update-session" or "download-session".
func DataPath(kind, sessionID, name string) string {
	return dataPrefix + kind + "/" + escapeSegment(sessionID) + "/" + escapeSegment(name)
}

// escapeSegment escapes s as one path segment. The server unescapes each
// segment on its own, so '/', '%', '#', '?' and spaces survive.
func escapeSegment(s string) string { return url.PathEscape(s) }

// valueBody is the /rest success body.
type valueBody struct {
	Value any `json:"value"`
}

// errorBody is the /rest error body (spec §0.2). Messages carry the
// session manager's message; the clfs extensions keep what a client needs
// to rebuild the very error: the full text when it is not "Kind: message"
// (a wrapped or generic error), and the cause, as the message id.
type errorBody struct {
	Type  string     `json:"type"`
	Value errorValue `json:"value"`
}

type errorValue struct {
	Messages []sessionmgr.Message `json:"messages"`
	Text     string               `json:"x_error,omitempty"`
}

// wireKind is how an error kind travels: HTTP status and /rest type.
type wireKind struct {
	Status int
	Type   string
}

const errorTypePrefix = "com.vmware.vapi.std.errors."

// kindWire maps every sessionmgr.Kind (spec §0.2); a test keeps it total.
var kindWire = map[sessionmgr.Kind]wireKind{
	sessionmgr.KindNotFound:                 {404, errorTypePrefix + "not_found"},
	sessionmgr.KindInvalidArgument:          {400, errorTypePrefix + "invalid_argument"},
	sessionmgr.KindNotAllowedInCurrentState: {400, errorTypePrefix + "not_allowed_in_current_state"},
	sessionmgr.KindAlreadyExists:            {400, errorTypePrefix + "already_exists"},
	sessionmgr.KindResourceBusy:             {400, errorTypePrefix + "resource_busy"},
	sessionmgr.KindInvalidElementType:       {400, errorTypePrefix + "invalid_element_type"},
	sessionmgr.KindResourceInaccessible:     {400, errorTypePrefix + "resource_inaccessible"},
	sessionmgr.KindConcurrentChange:         {400, errorTypePrefix + "concurrent_change"},
	sessionmgr.KindUnsupported:              {400, errorTypePrefix + "unsupported"},
	sessionmgr.KindUnauthenticated:          {401, errorTypePrefix + "unauthenticated"},
	sessionmgr.KindUnauthorized:             {403, errorTypePrefix + "unauthorized"},
	sessionmgr.KindError:                    {500, errorTypePrefix + "error"},
}

// kindOfType is the reverse of kindWire; unknown types are KindError.
func kindOfType(typ string) sessionmgr.Kind {
	for k, w := range kindWire {
		if w.Type == typ {
			return k
		}
	}
	return sessionmgr.KindError
}

// causes are the sentinels that travel as the message id, so that
// errors.Is(err, sessionmgr.ErrChecksumMismatch) holds on both sides.
var causes = []struct {
	id  string
	err error
}{
	{"clfs.checksum_mismatch", sessionmgr.ErrChecksumMismatch},
	{"clfs.size_mismatch", sessionmgr.ErrSizeMismatch},
	{"clfs.no_space", sessionmgr.ErrNoSpace},
	{"clfs.content_corrupt", sessionmgr.ErrContentCorrupt},
	{"clfs.name_too_long", sessionmgr.ErrNameTooLong},
	{"clfs.not_empty", sessionmgr.ErrNotEmpty},
	{"clfs.read_only", sessionmgr.ErrReadOnly},
}

// EncodeError is the status and /rest body of err.
func EncodeError(err error) (int, errorBody) {
	kind := sessionmgr.KindOf(err)
	w, ok := kindWire[kind]
	if !ok {
		kind, w = sessionmgr.KindError, kindWire[sessionmgr.KindError]
	}
	text := err.Error()
	msg, ok := strings.CutPrefix(text, string(kind)+": ")
	if !ok {
		msg = text
	}
	id := "clfs." + strings.TrimPrefix(w.Type, errorTypePrefix)
	for _, c := range causes {
		if errors.Is(err, c.err) {
			id = c.id
			break
		}
	}
	body := errorBody{Type: w.Type, Value: errorValue{
		Messages: []sessionmgr.Message{{ID: id, DefaultMessage: msg, Args: []string{}}},
	}}
	if text != string(kind)+": "+msg {
		body.Value.Text = text
	}
	return w.Status, body
}

// DecodeError rebuilds the error of a failed call from its status and
// body.
func DecodeError(status int, b []byte) error {
	var body errorBody
	if err := json.Unmarshal(b, &body); err == nil && body.Type != "" {
		return decodeError(body)
	}
	kind := sessionmgr.KindError
	switch status {
	case http.StatusNotFound:
		kind = sessionmgr.KindNotFound
	case http.StatusBadRequest, http.StatusMethodNotAllowed:
		kind = sessionmgr.KindInvalidArgument
	case http.StatusUnauthorized:
		kind = sessionmgr.KindUnauthenticated
	case http.StatusForbidden:
		kind = sessionmgr.KindUnauthorized
	}
	msg := bytes.TrimSpace(b)
	if len(msg) == 0 {
		msg = []byte(http.StatusText(status))
	}
	return &sessionmgr.Error{Kind: kind, Msg: fmt.Sprintf("HTTP %d: %s", status, msg)}
}

// decodeError rebuilds the error a server encoded: a *sessionmgr.Error
// whose Error() is the server's text, or, when that text was not
// "Kind: message", an error with that text wrapping one.
func decodeError(body errorBody) error {
	e := &sessionmgr.Error{Kind: kindOfType(body.Type)}
	if len(body.Value.Messages) > 0 {
		m := body.Value.Messages[0]
		e.Msg = m.DefaultMessage
		for _, c := range causes {
			if c.id == m.ID {
				e.Err = c.err
			}
		}
	}
	if body.Value.Text != "" && body.Value.Text != e.Error() {
		return &remoteError{text: body.Value.Text, err: e}
	}
	return e
}

// remoteError keeps a server's error text exactly.
type remoteError struct {
	text string
	err  *sessionmgr.Error
}

func (e *remoteError) Error() string { return e.text }
func (e *remoteError) Unwrap() error { return e.err }

// ReadAnswer decodes a /rest answer: its value into out (nil: no value
// wanted), or the error it carries.
func ReadAnswer(resp *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return DecodeError(resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	var v struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("bad answer: %w", err)
	}
	if err := json.Unmarshal(v.Value, out); err != nil {
		return fmt.Errorf("bad answer: %w", err)
	}
	return nil
}

// ReadOutput decodes the /rest answer to op: its output, of op's type.
func ReadOutput(op Operation, resp *http.Response) (any, error) {
	t := op.output()
	if t == reflect.TypeFor[NoResult]() {
		return NoResult{}, ReadAnswer(resp, nil)
	}
	out := reflect.New(t)
	if err := ReadAnswer(resp, out.Interface()); err != nil {
		return nil, err
	}
	return out.Elem().Interface(), nil
}

// UploadRequest is the PUT of a PUSH file's bytes; its body is the
// bytes, and its answer the file's info (ReadAnswer).
func UploadRequest(sessionID, name string, opts sessionmgr.UploadOptions) RestRequest {
	q := url.Values{}
	if opts.FromCommitted {
		q.Set(fromCommitted, "true")
	}
	return RestRequest{Method: http.MethodPut, Path: DataPath("update-session", sessionID, name), Query: q}
}
