package mount

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"clfs/sessionmgr"
)

// ErrNoMount is returned by Dial when no mount serves the home: there is
// no socket, or nothing answers on it (its mount was killed, and the
// catalog's lock died with it).
var ErrNoMount = errors.New("no clfs mount is running")

// Client is a client of a mount's control socket. Its methods are the
// session manager's, with the same signatures (but for the data plane's
// types) and the same errors: a *sessionmgr.Error of the same kind and
// message, so errors.Is(err, sessionmgr.ErrNotFound) and the printed
// line are as if the manager had been called in this process.
type Client struct {
	socket string
	hc     *http.Client
}

// Dial connects to the mount serving home, if one is running; otherwise
// it returns an error wrapping ErrNoMount.
func Dial(home string) (*Client, error) {
	home, err := filepath.Abs(home)
	if err != nil {
		return nil, err
	}
	path := SocketPath(home)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no control socket %s", ErrNoMount, path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := dialSocket(ctx, path)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: nothing answers on %s", ErrNoMount, path)
	case err != nil:
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	conn.Close()
	c := &Client{socket: path}
	c.hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialSocket(ctx, path)
		},
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
		// Uploads wait for the server's 100 Continue, which comes once
		// it has opened the file; the timer only starts the body early.
		ExpectContinueTimeout: time.Minute,
		WriteBufferSize:       256 << 10,
		ReadBufferSize:        256 << 10,
	}}
	var info serverInfo
	if err := c.call(ctx, http.MethodGet, clfsPrefix+"/info", nil, nil, &info); err != nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s does not answer: %w", path, err)
	}
	return c, nil
}

// Close releases the client's connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// Socket is the path of the control socket.
func (c *Client) Socket() string { return c.socket }

// ---- the API

func (c *Client) CreateLibrary(ctx context.Context, spec sessionmgr.LibraryCreateSpec, clientToken string) (string, error) {
	// A relative storage directory is the caller's, not the mount's.
	if spec.StorageDir != "" {
		dir, err := filepath.Abs(spec.StorageDir)
		if err != nil {
			return "", err
		}
		spec.StorageDir = dir
	}
	var id string
	err := c.call(ctx, http.MethodPost, restPath("local-library"), nil, createBody{spec, clientToken}, &id)
	return id, err
}

func (c *Client) GetLibrary(ctx context.Context, id string) (*sessionmgr.Library, error) {
	return get[sessionmgr.Library](ctx, c, restPath("library", id), nil)
}

func (c *Client) LibraryByName(ctx context.Context, name string) (*sessionmgr.Library, error) {
	return get[sessionmgr.Library](ctx, c, restPath("library"), url.Values{"name": {name}})
}

func (c *Client) ListLibraries(ctx context.Context) ([]sessionmgr.Library, error) {
	return list[sessionmgr.Library](ctx, c, restPath("library"), nil)
}

func (c *Client) FindLibraries(ctx context.Context, spec sessionmgr.LibraryFindSpec) ([]string, error) {
	var ids []string
	err := c.call(ctx, http.MethodPost, restPath("library"), action("find"), specBody{spec}, &ids)
	return ids, err
}

func (c *Client) DeleteLibrary(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, restPath("local-library", id), nil, nil, nil)
}

func (c *Client) CreateItem(ctx context.Context, spec sessionmgr.ItemCreateSpec, clientToken string) (string, error) {
	var id string
	err := c.call(ctx, http.MethodPost, restPath("library/item"), nil, createBody{spec, clientToken}, &id)
	return id, err
}

func (c *Client) GetItem(ctx context.Context, id string) (*sessionmgr.Item, error) {
	return get[sessionmgr.Item](ctx, c, restPath("library/item", id), nil)
}

func (c *Client) ItemByName(ctx context.Context, libraryID, name string) (*sessionmgr.Item, error) {
	return get[sessionmgr.Item](ctx, c, restPath("library/item"), url.Values{"library_id": {libraryID}, "name": {name}})
}

func (c *Client) ListItems(ctx context.Context, libraryID string) ([]sessionmgr.Item, error) {
	return list[sessionmgr.Item](ctx, c, restPath("library/item"), url.Values{"library_id": {libraryID}})
}

func (c *Client) FindItems(ctx context.Context, spec sessionmgr.ItemFindSpec) ([]string, error) {
	var ids []string
	err := c.call(ctx, http.MethodPost, restPath("library/item"), action("find"), specBody{spec}, &ids)
	return ids, err
}

func (c *Client) DeleteItem(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, restPath("library/item", id), nil, nil, nil)
}

func (c *Client) ListFiles(ctx context.Context, itemID string) ([]sessionmgr.File, error) {
	return list[sessionmgr.File](ctx, c, restPath("library/item/file"), url.Values{"library_item_id": {itemID}})
}

func (c *Client) GetFile(ctx context.Context, itemID, name string) (*sessionmgr.File, error) {
	var f sessionmgr.File
	err := c.call(ctx, http.MethodPost, restPath("library/item/file", itemID), action("get"), map[string]string{"name": name}, &f)
	return ptr(&f, err)
}

func (c *Client) ListStorage(ctx context.Context, itemID string) ([]sessionmgr.Storage, error) {
	return list[sessionmgr.Storage](ctx, c, restPath("library/item/storage"), url.Values{"library_item_id": {itemID}})
}

func (c *Client) GetStorage(ctx context.Context, itemID, name string) ([]sessionmgr.Storage, error) {
	var out []sessionmgr.Storage
	err := c.call(ctx, http.MethodPost, restPath("library/item/storage", itemID), action("get"), fileNameBody{Name: name}, &out)
	return out, err
}

func (c *Client) CreateUpdateSession(ctx context.Context, spec sessionmgr.UpdateSessionCreateSpec, clientToken string) (string, error) {
	var id string
	err := c.call(ctx, http.MethodPost, restPath("library/item/update-session"), nil, createBody{spec, clientToken}, &id)
	return id, err
}

func (c *Client) GetUpdateSession(ctx context.Context, id string) (*sessionmgr.UpdateSession, error) {
	return get[sessionmgr.UpdateSession](ctx, c, restPath("library/item/update-session", id), nil)
}

func (c *Client) ListUpdateSessions(ctx context.Context, itemID string) ([]sessionmgr.UpdateSession, error) {
	return list[sessionmgr.UpdateSession](ctx, c, restPath("library/item/update-session"), itemFilter(itemID))
}

func (c *Client) KeepAliveUpdateSession(ctx context.Context, id string, progress *int64) error {
	var body any
	if progress != nil {
		body = map[string]int64{"client_progress": *progress}
	}
	return c.call(ctx, http.MethodPost, restPath("library/item/update-session", id), action("keep-alive"), body, nil)
}

func (c *Client) CompleteUpdateSession(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodPost, restPath("library/item/update-session", id), action("complete"), nil, nil)
}

func (c *Client) CancelUpdateSession(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodPost, restPath("library/item/update-session", id), action("cancel"), nil, nil)
}

func (c *Client) FailUpdateSession(ctx context.Context, id, message string) error {
	return c.call(ctx, http.MethodPost, restPath("library/item/update-session", id), action("fail"), failBody{message}, nil)
}

func (c *Client) DeleteUpdateSession(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, restPath("library/item/update-session", id), nil, nil, nil)
}

func (c *Client) AddFile(ctx context.Context, sessionID string, spec sessionmgr.FileAddSpec) (*sessionmgr.UpdateSessionFile, error) {
	var f sessionmgr.UpdateSessionFile
	err := c.call(ctx, http.MethodPost, restPath("library/item/updatesession/file", sessionID), action("add"),
		map[string]sessionmgr.FileAddSpec{"file_spec": spec}, &f)
	return ptr(&f, err)
}

func (c *Client) GetSessionFile(ctx context.Context, sessionID, name string) (*sessionmgr.UpdateSessionFile, error) {
	var f sessionmgr.UpdateSessionFile
	err := c.call(ctx, http.MethodPost, restPath("library/item/updatesession/file", sessionID), action("get"), fileNameBody{Name: name}, &f)
	return ptr(&f, err)
}

func (c *Client) ListSessionFiles(ctx context.Context, sessionID string) ([]sessionmgr.UpdateSessionFile, error) {
	return list[sessionmgr.UpdateSessionFile](ctx, c, restPath("library/item/updatesession/file"), url.Values{"update_session_id": {sessionID}})
}

func (c *Client) RemoveSessionFile(ctx context.Context, sessionID, name string) error {
	return c.call(ctx, http.MethodPost, restPath("library/item/updatesession/file", sessionID), action("remove"), fileNameBody{Name: name}, nil)
}

func (c *Client) ValidateUpdateSession(ctx context.Context, sessionID string) (*sessionmgr.ValidationResult, error) {
	var v sessionmgr.ValidationResult
	err := c.call(ctx, http.MethodPost, restPath("library/item/updatesession/file", sessionID), action("validate"), nil, &v)
	return ptr(&v, err)
}

func (c *Client) CreateDownloadSession(ctx context.Context, spec sessionmgr.DownloadSessionCreateSpec, clientToken string) (string, error) {
	var id string
	err := c.call(ctx, http.MethodPost, restPath("library/item/download-session"), nil, createBody{spec, clientToken}, &id)
	return id, err
}

func (c *Client) GetDownloadSession(ctx context.Context, id string) (*sessionmgr.DownloadSession, error) {
	return get[sessionmgr.DownloadSession](ctx, c, restPath("library/item/download-session", id), nil)
}

func (c *Client) ListDownloadSessions(ctx context.Context, itemID string) ([]sessionmgr.DownloadSession, error) {
	return list[sessionmgr.DownloadSession](ctx, c, restPath("library/item/download-session"), itemFilter(itemID))
}

func (c *Client) KeepAliveDownloadSession(ctx context.Context, id string, progress *int64) error {
	var body any
	if progress != nil {
		body = map[string]int64{"progress": *progress}
	}
	return c.call(ctx, http.MethodPost, restPath("library/item/download-session", id), action("keep-alive"), body, nil)
}

func (c *Client) CancelDownloadSession(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodPost, restPath("library/item/download-session", id), action("cancel"), nil, nil)
}

func (c *Client) FailDownloadSession(ctx context.Context, id, message string) error {
	return c.call(ctx, http.MethodPost, restPath("library/item/download-session", id), action("fail"), failBody{message}, nil)
}

func (c *Client) DeleteDownloadSession(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, restPath("library/item/download-session", id), nil, nil, nil)
}

func (c *Client) ListDownloadFiles(ctx context.Context, id string) ([]sessionmgr.DownloadSessionFile, error) {
	return list[sessionmgr.DownloadSessionFile](ctx, c, restPath("library/item/downloadsession/file"), url.Values{"download_session_id": {id}})
}

func (c *Client) GetDownloadFile(ctx context.Context, id, name string) (*sessionmgr.DownloadSessionFile, error) {
	var f sessionmgr.DownloadSessionFile
	err := c.call(ctx, http.MethodPost, restPath("library/item/downloadsession/file", id), action("get"), fileNameBody{Name: name}, &f)
	return ptr(&f, err)
}

func (c *Client) PrepareDownloadFile(ctx context.Context, id, name, endpointType string) (*sessionmgr.DownloadSessionFile, error) {
	var f sessionmgr.DownloadSessionFile
	err := c.call(ctx, http.MethodPost, restPath("library/item/downloadsession/file", id), action("prepare"),
		fileNameBody{Name: name, EndpointType: endpointType}, &f)
	return ptr(&f, err)
}

// Fsck runs fsck in the mount; progress, if not nil, is called as the
// mount reports it.
func (c *Client) Fsck(ctx context.Context, progress func(done, total int64)) (*sessionmgr.FsckReport, error) {
	var rep sessionmgr.FsckReport
	if progress == nil {
		err := c.call(ctx, http.MethodPost, clfsPrefix+"/fsck", nil, nil, &rep)
		return ptr(&rep, err)
	}
	resp, err := c.do(ctx, http.MethodPost, clfsPrefix+"/fsck", url.Values{progressParam: {"true"}}, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != ndjson {
		return ptr(&rep, decodeValue(resp, &rep))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var line struct {
			Progress *fsckProgress   `json:"x_progress"`
			Type     string          `json:"type"`
			Value    json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("fsck: bad answer from the mount: %w", err)
		}
		switch {
		case line.Progress != nil:
			progress(line.Progress.Done, line.Progress.Total)
		case line.Type != "":
			var v errorValue
			if err := json.Unmarshal(line.Value, &v); err != nil {
				return nil, fmt.Errorf("fsck: bad answer from the mount: %w", err)
			}
			return nil, decodeError(errorBody{Type: line.Type, Value: v})
		default:
			if err := json.Unmarshal(line.Value, &rep); err != nil {
				return nil, fmt.Errorf("fsck: bad answer from the mount: %w", err)
			}
			return &rep, nil
		}
	}
	if err := c.transportErr(ctx, sc.Err()); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("fsck: the mount's answer ended early")
}

// ---- request bodies

type createBody struct {
	Spec  any    `json:"create_spec"`
	Token string `json:"client_token,omitempty"`
}

type specBody struct {
	Spec any `json:"spec"`
}

type failBody struct {
	Message string `json:"client_error_message"`
}

type fileNameBody struct {
	Name         string `json:"file_name"`
	EndpointType string `json:"endpoint_type,omitempty"`
}

func action(name string) url.Values { return url.Values{actionParam: {name}} }

func itemFilter(itemID string) url.Values {
	if itemID == "" {
		return nil
	}
	return url.Values{"library_item_id": {itemID}}
}

func ptr[T any](v *T, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

func get[T any](ctx context.Context, c *Client, path string, q url.Values) (*T, error) {
	var v T
	return ptr(&v, c.call(ctx, http.MethodGet, path, q, nil, &v))
}

func list[T any](ctx context.Context, c *Client, path string, q url.Values) ([]T, error) {
	var v []T
	err := c.call(ctx, http.MethodGet, path, q, nil, &v)
	return v, err
}

// ---- transport

// call makes one API call: in, if not nil, is the JSON body; the answer's
// value is decoded into out, if not nil.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		if err := checkUTF8(reflect.ValueOf(in)); err != nil {
			return err
		}
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeValue(resp, out)
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Response, error) {
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportErr(ctx, err)
	}
	return resp, nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Request, error) {
	u := "http://clfs" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return http.NewRequestWithContext(ctx, method, u, body)
}

// transportErr says which socket failed; a cancelled call is just that.
func (c *Client) transportErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("control socket %s: %w", c.socket, err)
}

// decodeValue decodes a {"value": ...} answer into out, or the error
// answer into the error it was.
func decodeValue(resp *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return errorOf(resp.StatusCode, b)
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

// errorOf rebuilds the error of a failed call from its answer.
func errorOf(status int, b []byte) error {
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
	return &sessionmgr.Error{Kind: kind, Msg: fmt.Sprintf("control socket: HTTP %d: %s", status, msg)}
}

// ---- data plane

// checkName refuses what cannot be a path segment: the API refuses these
// names anyway, and ServeMux would redirect them.
// checkUTF8 refuses a request body holding a string that is not UTF-8:
// json.Marshal would send U+FFFD in its place, and the server would act
// on another name than the caller's (create "\xff" and get "\ufffd").
func checkUTF8(v reflect.Value) error {
	switch v.Kind() {
	case reflect.String:
		if s := v.String(); !utf8.ValidString(s) {
			return &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("%q is not valid UTF-8, which the API cannot carry", s)}
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return checkUTF8(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				if err := checkUTF8(v.Field(i)); err != nil {
					return err
				}
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // bytes travel as base64
		}
		for i := range v.Len() {
			if err := checkUTF8(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if err := checkUTF8(it.Key()); err != nil {
				return err
			}
			if err := checkUTF8(it.Value()); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkName(name string) error {
	if name == "" || name == "." || name == ".." {
		return &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("file name %q is not a valid name", name)}
	}
	return nil
}

// Upload is the data plane of one PUSH file: one PUT whose body is what
// ReadFrom is given. It is not safe for concurrent use.
type Upload struct {
	pw   *io.PipeWriter
	done chan struct{} // closed once the answer is in

	info *sessionmgr.UpdateSessionFile // set before done is closed
	err  error                         // set before done is closed
}

// OpenUpload starts the PUT of a PUSH file. The server opens the file
// before it asks for the body (100 Continue), so a file that was not
// added, or a session that is not ACTIVE, fails here, as in the manager.
func (c *Client) OpenUpload(ctx context.Context, sessionID, name string, opts sessionmgr.UploadOptions) (*Upload, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	var q url.Values
	if opts.FromCommitted {
		q = url.Values{fromCommitted: {"true"}}
	}
	pr, pw := io.Pipe()
	req, err := c.newRequest(ctx, http.MethodPut, dataPath("update-session", sessionID, name), q, pr)
	if err != nil {
		return nil, err
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Expect", "100-continue")
	proceed := make(chan struct{})
	var once sync.Once
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got100Continue: func() { once.Do(func() { close(proceed) }) },
	}))
	u := &Upload{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(u.done)
		resp, err := c.hc.Do(req)
		if err != nil {
			u.err = c.transportErr(ctx, err)
			return
		}
		defer resp.Body.Close()
		var info sessionmgr.UpdateSessionFile
		if u.err = decodeValue(resp, &info); u.err == nil {
			u.info = &info
		}
	}()
	select {
	case <-proceed:
		return u, nil
	case <-u.done:
		pw.Close() // the transport may still want the body: an empty one
		if u.err != nil {
			return nil, u.err
		}
		return u, nil
	}
}

// ReadFrom sends what r holds as (more of) the file's bytes.
func (u *Upload) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.CopyBuffer(u.pw, r, make([]byte, 1<<20))
	if err != nil && errors.Is(err, io.ErrClosedPipe) {
		// The server stopped reading: its answer says why.
		<-u.done
		if u.err != nil {
			return n, u.err
		}
	}
	return n, err
}

// Finish ends the body and returns the server's verdict on the file: its
// info, or why it was refused (size or checksum mismatch).
func (u *Upload) Finish(ctx context.Context) (*sessionmgr.UpdateSessionFile, error) {
	u.pw.Close()
	select {
	case <-u.done:
	case <-ctx.Done():
		u.pw.CloseWithError(ctx.Err())
		<-u.done
	}
	return u.info, u.err
}

// errUploadAborted ends the body of an upload closed before Finish.
var errUploadAborted = errors.New("upload closed before Finish")

// Close abandons the transfer if Finish was not called; the bytes sent so
// far stay staged with the session, as when a local handle is closed.
func (u *Upload) Close() error {
	u.pw.CloseWithError(errUploadAborted)
	<-u.done
	return nil
}

// Download is the data plane of one file of a download session. Reads
// that follow each other share one streaming GET; a read elsewhere starts
// a Range request. ReadAt calls are serialized.
type Download struct {
	c         *Client
	ctx       context.Context // of OpenDownload: the reads' requests use it
	sessionID string
	name      string
	size      int64

	mu   sync.Mutex
	body io.ReadCloser // GUARDED_BY(mu); streaming from pos, or nil
	pos  int64         // GUARDED_BY(mu)
}

// OpenDownload opens a file of a download session for reading; it
// fails, as the manager does, if the session or file cannot be read.
func (c *Client) OpenDownload(ctx context.Context, id, name string) (*Download, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	d := &Download{c: c, ctx: ctx, sessionID: id, name: name}
	resp, err := d.get(0)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength < 0 {
		resp.Body.Close()
		return nil, fmt.Errorf("download %s: the mount did not say its size", name)
	}
	d.size, d.body = resp.ContentLength, resp.Body
	return d, nil
}

// get requests the file from off on.
func (d *Download) get(off int64) (*http.Response, error) {
	req, err := d.c.newRequest(d.ctx, http.MethodGet, dataPath("download-session", d.sessionID, d.name), nil, nil)
	if err != nil {
		return nil, err
	}
	want := http.StatusOK
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
		want = http.StatusPartialContent
	}
	resp, err := d.c.hc.Do(req)
	if err != nil {
		return nil, d.c.transportErr(d.ctx, err)
	}
	if resp.StatusCode != want {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent {
			return nil, fmt.Errorf("download %s: HTTP %d to a request from byte %d", d.name, resp.StatusCode, off)
		}
		return nil, decodeValue(resp, nil)
	}
	return resp, nil
}

// Size is the file's size.
func (d *Download) Size() int64 { return d.size }

// ReadAt reads len(p) bytes at off, or up to the end of the file.
func (d *Download) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: fmt.Sprintf("negative offset %d", off)}
	}
	if off >= d.size {
		return 0, io.EOF
	}
	want := p[:min(int64(len(p)), d.size-off)]
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	fresh := false // the stream was opened by this read and gave nothing yet
	for n < len(want) {
		at := off + int64(n)
		if d.body == nil || d.pos != at {
			d.dropStream()
			// A session canceled meanwhile fails here, with its reason.
			resp, err := d.get(at)
			if err != nil {
				return n, err
			}
			d.body, d.pos, fresh = resp.Body, at, true
		}
		m, err := d.body.Read(want[n:])
		n += m
		d.pos += int64(m)
		if m > 0 {
			fresh = false
		}
		if err != nil && n < len(want) {
			d.dropStream()
			if fresh {
				return n, fmt.Errorf("download %s: %w at byte %d of %d", d.name, io.ErrUnexpectedEOF, off+int64(n), d.size)
			}
		}
	}
	if len(want) < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *Download) dropStream() {
	if d.body != nil {
		d.body.Close()
		d.body = nil
	}
}

// Close ends the reads.
func (d *Download) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropStream()
	return nil
}
