package mount

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"clfs/sessionmgr"
)

// What the control server and its client agree on: paths, bodies, errors.

// SocketName is the control socket's name in the home directory.
const SocketName = "clfs.sock"

// SocketPath is the control socket of a home.
func SocketPath(home string) string { return filepath.Join(home, SocketName) }

const (
	// restPrefix starts the paths of the API proper: the vSphere /rest
	// surface (spec §9.2), resource and parameter names included.
	restPrefix = "/rest/com/vmware/content"
	// clfsPrefix starts the clfs extensions: the data plane, fsck, info.
	clfsPrefix = "/clfs"

	actionParam   = "~action"
	progressParam = "x_progress"       // fsck: stream progress lines
	fromCommitted = "x_from_committed" // upload: start from the committed file
	ndjson        = "application/x-ndjson"
)

// restPath is prefix/resource, and /id:ID when id is given.
func restPath(resource string, id ...string) string {
	p := restPrefix + "/" + resource
	for _, s := range id {
		p += "/id:" + escapeSegment(s)
	}
	return p
}

// dataPath is the data plane of one file of a session.
func dataPath(kind, sessionID, name string) string {
	return clfsPrefix + "/data/" + kind + "/" + escapeSegment(sessionID) + "/" + escapeSegment(name)
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
	{"clfs.read_only", ErrReadOnly},
}

// encodeError is the body and status of err.
func encodeError(err error) (int, errorBody) {
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

// maxSocketPath is what sun_path holds, without the NUL.
const maxSocketPath = 107

// withSocketName calls fn with a name of the socket at path that fits in
// sun_path: path itself, or, for a deep home, /proc/self/fd/N/clfs.sock
// over an O_PATH descriptor of its directory, open only during fn.
func withSocketName(path string, fn func(name string) error) error {
	if len(path) <= maxSocketPath {
		return fn(path)
	}
	dir := filepath.Dir(path)
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	return fn(fmt.Sprintf("/proc/self/fd/%d/%s", fd, filepath.Base(path)))
}
