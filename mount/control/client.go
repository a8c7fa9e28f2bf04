package control

import (
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

	"clfs/mount/api"
	"clfs/sessionmgr"
)

// ErrNoMount is returned by Dial when no mount serves the home: there is
// no socket, or nothing answers on it (its mount was killed, and the
// catalog's lock died with it).
var ErrNoMount = errors.New("no clfs mount is running")

// Client is a client of a daemon's control socket. It runs the API's
// operations (an api.Caller: api.Call(ctx, c, api.GetItem, ...)), the
// data plane and fsck, with the session manager's errors: a
// *sessionmgr.Error of the same kind and message, so errors.Is(err,
// sessionmgr.ErrNotFound) and the printed line are as if the manager had
// been called in this process.
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
	if _, err := api.Call(ctx, c, api.Info, api.None{}); err != nil {
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

// Do runs op with input in (a pointer to its input type) on the daemon,
// and returns its output as the session manager would: api.Call types it.
func (c *Client) Do(ctx context.Context, op api.Operation, in any) (any, error) {
	req := api.EncodeRest(op, in)
	var body io.Reader
	if req.Body != nil {
		if err := checkUTF8(reflect.ValueOf(req.Body)); err != nil {
			return nil, err
		}
		b, err := json.Marshal(req.Body)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.do(ctx, req.Method, req.Path, req.Query, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return api.ReadOutput(op, resp)
}

// Fsck runs fsck in the daemon; progress, if not nil, is called as the
// daemon reports it.
func (c *Client) Fsck(ctx context.Context, progress func(done, total int64)) (*sessionmgr.FsckReport, error) {
	req := api.FsckRequest(progress != nil)
	resp, err := c.do(ctx, req.Method, req.Path, req.Query, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rep, err := api.ReadFsckAnswer(resp, progress)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return rep, err
}

// Counters returns the mount's FUSE requests so far, by opcode; a
// daemon without a mount answers sessionmgr.ErrUnsupported.
func (c *Client) Counters(ctx context.Context) (map[string]uint64, error) {
	req := api.CountersRequest()
	resp, err := c.do(ctx, req.Method, req.Path, req.Query, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	counts := map[string]uint64{}
	if err := api.ReadAnswer(resp, &counts); err != nil {
		return nil, err
	}
	return counts, nil
}

// ---- transport

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
	ur := api.UploadRequest(sessionID, name, opts)
	pr, pw := io.Pipe()
	req, err := c.newRequest(ctx, ur.Method, ur.Path, ur.Query, pr)
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
		if u.err = api.ReadAnswer(resp, &info); u.err == nil {
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
	req, err := d.c.newRequest(d.ctx, http.MethodGet, api.DataPath("download-session", d.sessionID, d.name), nil, nil)
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
		return nil, api.ReadAnswer(resp, nil)
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
