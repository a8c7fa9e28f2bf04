package control

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"clfs/mount/api"
	"clfs/sessionmgr"
)

// The control socket is tested without FUSE: a session manager in a temp
// home, served on its socket, driven through the client; every answer is
// compared with what the manager itself says.

// ctlEnv is a manager and its control socket.
type ctlEnv struct {
	m   *sessionmgr.Manager
	srv *Server
	c   *Client
}

func newCtlEnv(t *testing.T) *ctlEnv {
	t.Helper()
	home := t.TempDir()
	m, err := sessionmgr.Open(sessionmgr.Options{Home: home, ReapInterval: -1, Logger: ctlLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Serve(m, SocketPath(m.Home()), api.Options{Logger: ctlLogger(t)})
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	c, err := Dial(home)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return &ctlEnv{m: m, srv: srv, c: c}
}

func ctlLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(ctlWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type ctlWriter struct{ t testing.TB }

func (w ctlWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// sameError checks that the client's error is the manager's, to the text.
func sameError(t *testing.T, what string, local, remote error) {
	t.Helper()
	if local == nil || remote == nil {
		t.Errorf("%s: local %v, remote %v: want errors from both", what, local, remote)
		return
	}
	if local.Error() != remote.Error() || sessionmgr.KindOf(local) != sessionmgr.KindOf(remote) {
		t.Errorf("%s:\nlocal  %q (%s)\nremote %q (%s)", what, local, sessionmgr.KindOf(local), remote, sessionmgr.KindOf(remote))
	}
	for _, s := range []error{sessionmgr.ErrNotFound, sessionmgr.ErrInvalidArgument, sessionmgr.ErrAlreadyExists,
		sessionmgr.ErrNotAllowedInCurrentState, sessionmgr.ErrChecksumMismatch, sessionmgr.ErrSizeMismatch} {
		if errors.Is(local, s) != errors.Is(remote, s) {
			t.Errorf("%s: errors.Is(%v): local %v, remote %v", what, s, errors.Is(local, s), errors.Is(remote, s))
		}
	}
}

func TestControlAPI(t *testing.T) {
	e := newCtlEnv(t)
	ctx := context.Background()
	c, m := e.c, e.m

	st, err := os.Lstat(e.srv.Path())
	if err != nil || st.Mode().Perm() != 0o600 || st.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %s: %v %v, want a socket with mode 0600", e.srv.Path(), st.Mode(), err)
	}

	libID, err := api.Call(ctx, c, api.CreateLibrary, api.LibraryCreate{Spec: sessionmgr.LibraryCreateSpec{Name: "lib1", Description: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	lib, err := api.Call(ctx, c, api.GetLibrary, api.ByID{ID: libID})
	if err != nil || lib.Name != "lib1" || lib.Description != "d" {
		t.Fatalf("GetLibrary: %+v %v", lib, err)
	}
	byName, err := api.Call(ctx, c, api.LibraryByName, api.LibraryName{Name: "LIB1"})
	if err != nil || byName.ID != libID {
		t.Fatalf("LibraryByName: %+v %v", byName, err)
	}
	local, _ := m.GetLibrary(ctx, libID)
	if !jsonEqual(t, local, lib) {
		t.Errorf("library differs:\nlocal  %+v\nremote %+v", local, lib)
	}
	libs, err := api.Call(ctx, c, api.ListLibraries, api.None{})
	if err != nil || len(libs) != 1 || libs[0].ID != libID {
		t.Fatalf("ListLibraries: %+v %v", libs, err)
	}
	if ids, err := api.Call(ctx, c, api.FindLibraries, api.LibraryFind{Spec: sessionmgr.LibraryFindSpec{Name: ptrTo("lib1")}}); err != nil || len(ids) != 1 || ids[0] != libID {
		t.Errorf("FindLibraries: %v %v", ids, err)
	}

	// Errors: kind and text are the manager's.
	_, lerr := m.CreateLibrary(ctx, sessionmgr.LibraryCreateSpec{Name: "lib1"}, "")
	_, rerr := api.Call(ctx, c, api.CreateLibrary, api.LibraryCreate{Spec: sessionmgr.LibraryCreateSpec{Name: "lib1"}})
	sameError(t, "duplicate library", lerr, rerr)
	_, lerr = m.LibraryByName(ctx, "nope")
	_, rerr = api.Call(ctx, c, api.LibraryByName, api.LibraryName{Name: "nope"})
	sameError(t, "missing library", lerr, rerr)
	if !errors.Is(rerr, sessionmgr.ErrNotFound) || rerr.Error() != `NotFound: library "nope" not found` {
		t.Errorf("missing library: %q", rerr)
	}
	_, lerr = m.GetLibrary(ctx, "a/b c%d")
	_, rerr = api.Call(ctx, c, api.GetLibrary, api.ByID{ID: "a/b c%d"})
	sameError(t, "odd id", lerr, rerr)
	_, lerr = m.ItemByName(ctx, libID, "missing")
	_, rerr = api.Call(ctx, c, api.ItemByName, api.ItemName{LibraryID: libID, Name: "missing"})
	sameError(t, "missing item", lerr, rerr)
	_, lerr = m.CreateItem(ctx, sessionmgr.ItemCreateSpec{LibraryID: libID, Name: ".."}, "")
	_, rerr = api.Call(ctx, c, api.CreateItem, api.ItemCreate{Spec: sessionmgr.ItemCreateSpec{LibraryID: libID, Name: ".."}})
	sameError(t, "bad item name", lerr, rerr)
	_, lerr = m.CreateItem(ctx, sessionmgr.ItemCreateSpec{LibraryID: libID, Name: "x"}, "not-a-uuid")
	_, rerr = api.Call(ctx, c, api.CreateItem, api.ItemCreate{Spec: sessionmgr.ItemCreateSpec{LibraryID: libID, Name: "x"}, ClientToken: "not-a-uuid"})
	sameError(t, "bad client token", lerr, rerr)

	itemID, err := api.Call(ctx, c, api.CreateItem, api.ItemCreate{Spec: sessionmgr.ItemCreateSpec{LibraryID: libID, Name: "item"}})
	if err != nil {
		t.Fatal(err)
	}
	if it, err := api.Call(ctx, c, api.ItemByName, api.ItemName{LibraryID: libID, Name: "item"}); err != nil || it.ID != itemID {
		t.Fatalf("ItemByName: %+v %v", it, err)
	}
	if items, err := api.Call(ctx, c, api.ListItems, api.ItemsOf{LibraryID: libID}); err != nil || len(items) != 1 {
		t.Fatalf("ListItems: %+v %v", items, err)
	}

	// Upload a file whose name needs escaping, with its checksum.
	name := "a file %41 #1 ?x=ü.bin"
	data := make([]byte, 3<<20+5)
	rand.Read(data)
	sum := sha256.Sum256(data)
	size := int64(len(data))
	sid, err := api.Call(ctx, c, api.CreateUpdateSession, api.UpdateSessionCreate{Spec: sessionmgr.UpdateSessionCreateSpec{LibraryItemID: itemID}})
	if err != nil {
		t.Fatal(err)
	}
	_, lerr = m.CreateUpdateSession(ctx, sessionmgr.UpdateSessionCreateSpec{LibraryItemID: itemID}, "")
	_, rerr = api.Call(ctx, c, api.CreateUpdateSession, api.UpdateSessionCreate{Spec: sessionmgr.UpdateSessionCreateSpec{LibraryItemID: itemID}})
	sameError(t, "second update session", lerr, rerr)
	if _, err := api.Call(ctx, c, api.AddFile, api.FileAdd{SessionID: sid, Spec: sessionmgr.FileAddSpec{Name: name, SourceType: sessionmgr.SourcePush, Size: &size,
		ChecksumInfo: &sessionmgr.ChecksumInfo{Algorithm: "SHA256", Checksum: hex.EncodeToString(sum[:])}}}); err != nil {
		t.Fatal(err)
	}
	// A file that was not added fails at open, before any byte is sent.
	_, lerr = m.OpenUpload(ctx, sid, "not added", sessionmgr.UploadOptions{})
	_, rerr = c.OpenUpload(ctx, sid, "not added", sessionmgr.UploadOptions{})
	sameError(t, "upload of a file not added", lerr, rerr)

	up, err := c.OpenUpload(ctx, sid, name, sessionmgr.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := up.ReadFrom(bytes.NewReader(data[:1<<20])); err != nil || n != 1<<20 {
		t.Fatalf("ReadFrom: %d %v", n, err)
	}
	// While the body streams, the manager sees the bytes arrive.
	eventuallyCtl(t, "bytes_transferred of a running upload", func() bool {
		s, err := m.GetUpdateSession(ctx, sid)
		return err == nil && s.BytesTransferred >= 1<<19
	})
	if n, err := up.ReadFrom(bytes.NewReader(data[1<<20:])); err != nil || n != size-1<<20 {
		t.Fatalf("ReadFrom: %d %v", n, err)
	}
	info, err := up.Finish(ctx)
	if err != nil || info.Status != sessionmgr.TransferReady || info.Name != name || info.BytesTransferred != size {
		t.Fatalf("Finish: %+v %v", info, err)
	}
	up.Close()
	if files, err := api.Call(ctx, c, api.ListUpdateSessionFiles, api.UpdateSessionFilesOf{SessionID: sid}); err != nil || len(files) != 1 || files[0].Name != name {
		t.Errorf("ListSessionFiles: %+v %v", files, err)
	}
	if v, err := api.Call(ctx, c, api.ValidateUpdateSession, api.ByID{ID: sid}); err != nil || v.HasErrors {
		t.Errorf("ValidateUpdateSession: %+v %v", v, err)
	}
	if err := api.Run(ctx, c, api.CompleteUpdateSession, api.ByID{ID: sid}); err != nil {
		t.Fatal(err)
	}
	lerr = m.CancelUpdateSession(ctx, sid)
	rerr = api.Run(ctx, c, api.CancelUpdateSession, api.ByID{ID: sid})
	sameError(t, "cancel of a DONE session", lerr, rerr)

	files, err := api.Call(ctx, c, api.ListFiles, api.FilesOf{ItemID: itemID})
	if err != nil || len(files) != 1 || files[0].Name != name || files[0].ChecksumInfo.Checksum != hex.EncodeToString(sum[:]) {
		t.Fatalf("ListFiles: %+v %v", files, err)
	}
	localFiles, _ := m.ListFiles(ctx, itemID)
	if !jsonEqual(t, localFiles, files) {
		t.Errorf("files differ:\nlocal  %+v\nremote %+v", localFiles, files)
	}
	if f, err := api.Call(ctx, c, api.GetFile, api.FileOf{ItemID: itemID, Name: name}); err != nil || f.Size != size {
		t.Errorf("GetFile: %+v %v", f, err)
	}
	_, lerr = m.GetFile(ctx, itemID, "nofile")
	_, rerr = api.Call(ctx, c, api.GetFile, api.FileOf{ItemID: itemID, Name: "nofile"})
	sameError(t, "missing file", lerr, rerr)
	if st, err := api.Call(ctx, c, api.ListStorage, api.FilesOf{ItemID: itemID}); err != nil || len(st) != 1 || len(st[0].StorageURIs) != 1 {
		t.Errorf("ListStorage: %+v %v", st, err)
	}

	// A checksum mismatch is refused at Finish, with its cause.
	sid2, err := api.Call(ctx, c, api.CreateUpdateSession, api.UpdateSessionCreate{Spec: sessionmgr.UpdateSessionCreateSpec{LibraryItemID: itemID}})
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("0", 64)
	if _, err := api.Call(ctx, c, api.AddFile, api.FileAdd{SessionID: sid2, Spec: sessionmgr.FileAddSpec{Name: "bad", SourceType: sessionmgr.SourcePush,
		ChecksumInfo: &sessionmgr.ChecksumInfo{Algorithm: "SHA256", Checksum: wrong}}}); err != nil {
		t.Fatal(err)
	}
	up, err = c.OpenUpload(ctx, sid2, "bad", sessionmgr.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	up.ReadFrom(strings.NewReader("not what was promised"))
	if _, err := up.Finish(ctx); !errors.Is(err, sessionmgr.ErrChecksumMismatch) || !errors.Is(err, sessionmgr.ErrInvalidArgument) ||
		!strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("Finish of a wrong checksum: %v", err)
	}
	up.Close()
	// An upload closed before Finish leaves the session ACTIVE.
	if _, err := api.Call(ctx, c, api.AddFile, api.FileAdd{SessionID: sid2, Spec: sessionmgr.FileAddSpec{Name: "left", SourceType: sessionmgr.SourcePush}}); err != nil {
		t.Fatal(err)
	}
	up, err = c.OpenUpload(ctx, sid2, "left", sessionmgr.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	up.ReadFrom(strings.NewReader("partial"))
	up.Close()
	progress := int64(50)
	if err := api.Run(ctx, c, api.KeepAliveUpdateSession, api.UpdateSessionKeepAlive{ID: sid2, Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	if s, err := api.Call(ctx, c, api.GetUpdateSession, api.ByID{ID: sid2}); err != nil || s.State != sessionmgr.StateActive || s.ClientProgress != 50 {
		t.Errorf("after keep-alive: %+v %v", s, err)
	}
	if err := api.Run(ctx, c, api.FailUpdateSession, api.SessionFail{ID: sid2, Message: "given up"}); err != nil {
		t.Fatal(err)
	}
	if s, err := api.Call(ctx, c, api.GetUpdateSession, api.ByID{ID: sid2}); err != nil || s.State != sessionmgr.StateFailed || s.ErrorMessage.DefaultMessage != "given up" {
		t.Errorf("after fail: %+v %v", s, err)
	}
	if err := api.Run(ctx, c, api.DeleteUpdateSession, api.ByID{ID: sid2}); err != nil {
		t.Fatal(err)
	}
	if ups, err := api.Call(ctx, c, api.ListUpdateSessions, api.SessionsOf{ItemID: itemID}); err != nil || len(ups) != 1 || ups[0].ID != sid {
		t.Errorf("ListUpdateSessions: %+v %v", ups, err)
	}

	// Download: the whole file in one stream, then a Range read.
	did, err := api.Call(ctx, c, api.CreateDownloadSession, api.DownloadSessionCreate{Spec: sessionmgr.DownloadSessionCreateSpec{LibraryItemID: itemID}})
	if err != nil {
		t.Fatal(err)
	}
	if dfs, err := api.Call(ctx, c, api.ListDownloadSessionFiles, api.DownloadSessionFilesOf{SessionID: did}); err != nil || len(dfs) != 1 || dfs[0].Name != name {
		t.Errorf("ListDownloadFiles: %+v %v", dfs, err)
	}
	if f, err := api.Call(ctx, c, api.PrepareDownloadSessionFile, api.DownloadFilePrepare{SessionID: did, FileName: name}); err != nil || f.Name != name {
		t.Errorf("PrepareDownloadFile: %+v %v", f, err)
	}
	_, lerr = m.OpenDownload(ctx, did, "nofile")
	_, rerr = c.OpenDownload(ctx, did, "nofile")
	sameError(t, "download of a missing file", lerr, rerr)
	d, err := c.OpenDownload(ctx, did, name)
	if err != nil {
		t.Fatal(err)
	}
	if d.Size() != size {
		t.Fatalf("Size %d, want %d", d.Size(), size)
	}
	got, err := io.ReadAll(io.NewSectionReader(d, 0, d.Size()))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}
	p := make([]byte, 1000)
	if n, err := d.ReadAt(p, 123457); n != 1000 || err != nil || !bytes.Equal(p, data[123457:124457]) {
		t.Errorf("ReadAt in the middle: %d %v", n, err)
	}
	if n, err := d.ReadAt(p, size-10); n != 10 || err != io.EOF || !bytes.Equal(p[:10], data[size-10:]) {
		t.Errorf("ReadAt at the end: %d %v", n, err)
	}
	if n, err := d.ReadAt(p, size); n != 0 || err != io.EOF {
		t.Errorf("ReadAt past the end: %d %v", n, err)
	}
	// Canceling the session makes reads fail, with the reason.
	if err := api.Run(ctx, c, api.CancelDownloadSession, api.ByID{ID: did}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadAt(p, 0); !errors.Is(err, sessionmgr.ErrNotAllowedInCurrentState) {
		t.Errorf("read of a canceled session: %v", err)
	}
	d.Close()
	if s, err := api.Call(ctx, c, api.GetDownloadSession, api.ByID{ID: did}); err != nil || s.State != sessionmgr.StateCanceled {
		t.Errorf("GetDownloadSession: %+v %v", s, err)
	}
	if err := api.Run(ctx, c, api.DeleteDownloadSession, api.ByID{ID: did}); err != nil {
		t.Fatal(err)
	}
	if ds, err := api.Call(ctx, c, api.ListDownloadSessions, api.SessionsOf{}); err != nil || len(ds) != 0 {
		t.Errorf("ListDownloadSessions: %+v %v", ds, err)
	}

	// Fsck, with progress streamed.
	var calls atomic.Int32
	rep, err := c.Fsck(ctx, func(done, total int64) { calls.Add(1) })
	if err != nil || rep.FilesChecked != 1 || len(rep.Problems) != 0 || calls.Load() == 0 {
		t.Errorf("Fsck: %+v %v (%d progress calls)", rep, err, calls.Load())
	}
	if rep, err := c.Fsck(ctx, nil); err != nil || rep.BytesChecked != size {
		t.Errorf("Fsck without progress: %+v %v", rep, err)
	}

	if err := api.Run(ctx, c, api.DeleteItem, api.ByID{ID: itemID}); err != nil {
		t.Fatal(err)
	}
	if err := api.Run(ctx, c, api.DeleteLibrary, api.ByID{ID: libID}); err != nil {
		t.Fatal(err)
	}
}

// TestControlWire checks the bodies as a vSphere /rest client sees them.
func TestControlWire(t *testing.T) {
	e := newCtlEnv(t)
	get := func(path string) (int, map[string]any) {
		t.Helper()
		resp, err := e.c.hc.Get("http://clfs" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, v
	}
	status, body := get("/rest/com/vmware/content/library/id:nope")
	msgs, _ := body["value"].(map[string]any)["messages"].([]any)
	if status != 404 || body["type"] != "com.vmware.vapi.std.errors.not_found" || len(msgs) != 1 {
		t.Fatalf("missing library: HTTP %d %v", status, body)
	}
	msg := msgs[0].(map[string]any)
	if msg["default_message"] != "library nope not found" || msg["id"] == "" || msg["args"] == nil {
		t.Errorf("message: %v", msg)
	}
	status, body = get("/rest/com/vmware/content/library")
	if status != 200 || body["value"] == nil {
		t.Errorf("library list: HTTP %d %v", status, body)
	}
	status, body = get("/rest/com/vmware/content/nothing")
	if status != 404 || body["type"] != "com.vmware.vapi.std.errors.not_found" {
		t.Errorf("unknown path: HTTP %d %v", status, body)
	}
	resp, err := e.c.hc.Post("http://clfs/rest/com/vmware/content/library/item/update-session/id:x?~action=explode", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("unknown action: HTTP %d", resp.StatusCode)
	}
}

func TestControlSocketLifecycle(t *testing.T) {
	home := t.TempDir()
	if _, err := Dial(home); !errors.Is(err, ErrNoMount) {
		t.Errorf("Dial with no socket: %v, want ErrNoMount", err)
	}
	// A socket left behind by a killed mount: nothing answers.
	path := SocketPath(home)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	if _, err := Dial(home); !errors.Is(err, ErrNoMount) {
		t.Errorf("Dial of a stale socket: %v, want ErrNoMount", err)
	}

	m, err := sessionmgr.Open(sessionmgr.Options{Home: home, ReapInterval: -1, Logger: ctlLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	srv, err := Serve(m, path, api.Options{Logger: ctlLogger(t)})
	if err != nil {
		t.Fatalf("Serve over a stale socket: %v", err)
	}
	c, err := Dial(home)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Call(context.Background(), c, api.ListLibraries, api.None{}); err != nil {
		t.Error(err)
	}
	c.Close()
	// A live one is not taken over.
	if srv2, err := Serve(m, path, api.Options{Logger: ctlLogger(t)}); !errors.Is(err, ErrMountRunning) {
		if srv2 != nil {
			srv2.Close()
		}
		t.Errorf("second Serve: %v, want ErrMountRunning", err)
	}
	if c, err := Dial(home); err != nil {
		t.Errorf("the first server stopped answering: %v", err)
	} else {
		c.Close()
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
	if _, err := Dial(home); !errors.Is(err, ErrNoMount) {
		t.Errorf("Dial after Close: %v, want ErrNoMount", err)
	}

	// Not a socket: left alone.
	os.WriteFile(path, []byte("mine"), 0o600)
	if srv, err := Serve(m, path, api.Options{Logger: ctlLogger(t)}); err == nil {
		srv.Close()
		t.Error("Serve replaced a regular file")
	}
}

// TestControlPeerCheck drives the SO_PEERCRED check with a rule that
// refuses everyone: the connection is dropped after the kernel accepted
// it, and the rule saw our own uid.
func TestControlPeerCheck(t *testing.T) {
	for _, tc := range []struct {
		uid, owner uint32
		ok         bool
	}{{0, 1000, true}, {1000, 1000, true}, {1001, 1000, false}, {65534, 0, false}} {
		if got := peerAllowed(tc.uid, tc.owner); got != tc.ok {
			t.Errorf("peerAllowed(%d, %d) = %v", tc.uid, tc.owner, got)
		}
	}
	home := t.TempDir()
	m, err := sessionmgr.Open(sessionmgr.Options{Home: home, ReapInterval: -1, Logger: ctlLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var seen atomic.Int64
	seen.Store(-1)
	srv, err := serve(m, SocketPath(home), api.Options{Logger: ctlLogger(t)}, func(uid uint32) bool {
		seen.Store(int64(uid))
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := Dial(home)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded through a socket that refuses everyone")
	}
	if errors.Is(err, ErrNoMount) {
		t.Errorf("refused connection reported as no mount: %v", err)
	}
	if seen.Load() != int64(os.Geteuid()) {
		t.Errorf("SO_PEERCRED uid %d, want %d", seen.Load(), os.Geteuid())
	}
}

// TestControlDeepHome serves and dials a socket whose path does not fit
// in sun_path.
func TestControlDeepHome(t *testing.T) {
	home := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	m, err := sessionmgr.Open(sessionmgr.Options{Home: home, ReapInterval: -1, Logger: ctlLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(SocketPath(m.Home())) <= maxSocketPath {
		t.Fatalf("path %s is not deep enough", SocketPath(m.Home()))
	}
	srv, err := Serve(m, SocketPath(m.Home()), api.Options{Logger: ctlLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(home)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Call(context.Background(), c, api.ListLibraries, api.None{}); err != nil {
		t.Error(err)
	}
	c.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(SocketPath(m.Home())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
}

func ptrTo[T any](v T) *T { return &v }

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

func eventuallyCtl(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if ok() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not reached", what)
}

// TestControlCounters: the counters come from the function the daemon
// passes in api.Options, unchanged; a daemon without one (clfs serve)
// answers Unsupported.
func TestControlCounters(t *testing.T) {
	e := newCtlEnv(t)
	if _, err := e.c.Counters(context.Background()); !errors.Is(err, sessionmgr.ErrUnsupported) {
		t.Errorf("Counters without a mount: %v, want %v", err, sessionmgr.ErrUnsupported)
	}

	home := t.TempDir()
	m, err := sessionmgr.Open(sessionmgr.Options{Home: home, ReapInterval: -1, Logger: ctlLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want := map[string]uint64{"LOOKUP": 3, "CREATE": 1}
	srv, err := Serve(m, SocketPath(home), api.Options{Logger: ctlLogger(t), Counters: func() map[string]uint64 { return want }})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := Dial(home)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.Counters(context.Background())
	if err != nil || !jsonEqual(t, got, want) {
		t.Errorf("Counters = %v, %v; want %v", got, err, want)
	}
}
