package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"clfs/mount"
	"clfs/sessionmgr"
)

// While a mount runs it holds the catalog, and the commands go through its
// control socket. These tests run the commands both ways and compare.

// mountCLIHome mounts home for the rest of the test and returns the
// mountpoint and the mount.
func mountCLIHome(t *testing.T, home string) (string, *mount.Mount) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("this test mounts for real and needs /dev/fuse (run as root, or in a container with --device /dev/fuse): %v", err)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(logWriter{t}, nil))
	mt, err := mount.Start(mount.Options{Mountpoint: mnt, Home: home, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mt.Wait() }()
	t.Cleanup(func() {
		if err := mt.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return mnt, mt
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

var (
	uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timeRE = regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?`)
	inoRE  = regexp.MustCompile(`"ino": \d+`)
)

// normalize blanks what differs between two runs: ids, inode numbers,
// times (but the sources' fixed mtime) and temporary directories.
func normalize(s string, dirs map[string]string) string {
	for dir, name := range dirs {
		s = strings.ReplaceAll(s, dir, name)
	}
	s = uuidRE.ReplaceAllString(s, "<id>")
	s = inoRE.ReplaceAllString(s, `"ino": <ino>`)
	return timeRE.ReplaceAllStringFunc(s, func(t string) string {
		if strings.HasPrefix(t, fixedMtime.Format("2006-01-02")) || strings.HasPrefix(t, fixedMtime.Local().Format("2006-01-02")) {
			return t
		}
		return "<time>"
	})
}

// cliScenario runs the same commands on e and returns what they printed,
// errors included, normalized. newSession creates an update session of an
// item through the API, as another client would.
func cliScenario(t *testing.T, e *cliEnv, src string, newSession func(itemID string) string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "export")
	var tr strings.Builder
	step := func(args ...string) string {
		t.Helper()
		out, err := e.run(args...)
		fmt.Fprintf(&tr, "$ clfs %s\n%s", strings.Join(args, " "), out)
		if err != nil {
			fmt.Fprintf(&tr, "%s\n", errorLine(err))
		}
		return out
	}
	a := filepath.Join(src, "disk one.img")
	b := filepath.Join(src, "notes %41 #2.txt")
	empty := filepath.Join(src, "empty")
	step("library", "create", "lib1")
	step("library", "create", "lib1")
	step("item", "import", "lib1/item", a, b, empty)
	step("file", "ls", "lib1/item", "--json")
	step("file", "ls", "lib1/item")
	step("file", "info", "lib1/item/notes %41 #2.txt", "--json")
	step("file", "info", "lib1/item/nofile")
	step("item", "info", "lib1/missing")
	step("item", "import", "lib1/item", a, "--checksum", "SHA256:"+strings.Repeat("0", 64))

	step("item", "export", "lib1/item", dst)
	for _, p := range []string{a, b, empty} {
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(dst, filepath.Base(p)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("export of %s: %d bytes, %v; want the %d bytes imported", filepath.Base(p), len(got), err, len(want))
		}
		st, _ := os.Stat(filepath.Join(dst, filepath.Base(p)))
		fmt.Fprintf(&tr, "exported %q: %d bytes, mode %v, mtime %v\n", filepath.Base(p), len(got), st.Mode(), st.ModTime().UTC())
	}

	var it sessionmgr.Item
	e.json(&it, "item", "info", "lib1/item", "--json")
	sid := newSession(it.ID)
	step("session", "ls", "--json")
	step("session", "keep-alive", sid, "--progress", "30")
	step("session", "cancel", sid)
	step("session", "info", sid, "--json")
	step("session", "cancel", sid)
	step("session", "rm", sid)
	step("session", "info", sid)
	step("session", "info", "3f1c0c64-1111-4222-8333-444455556666")
	step("session", "ls")
	step("fsck")
	return normalize(tr.String(), map[string]string{e.home: "<home>", dst: "<dst>", src: "<src>"})
}

func TestSameOutputThroughTheMount(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "disk one.img"), randomBytes(t, 2<<20+7), 0o640)
	writeFile(t, filepath.Join(src, "notes %41 #2.txt"), []byte("hello\n"), 0o755)
	writeFile(t, filepath.Join(src, "empty"), nil, 0o600)

	// No mount: every command opens the catalog.
	local := newCLI(t)
	want := cliScenario(t, local, src, func(itemID string) (sid string) {
		local.withManager(func(ctx context.Context, m *sessionmgr.Manager) {
			var err error
			if sid, err = m.CreateUpdateSession(ctx, sessionmgr.UpdateSessionCreateSpec{LibraryItemID: itemID}, ""); err != nil {
				t.Fatal(err)
			}
		})
		return sid
	})

	// A mount holds the catalog: the commands must use its socket.
	remote := newCLI(t)
	_, mt := mountCLIHome(t, remote.home)
	if _, err := mount.Start(mount.Options{Mountpoint: t.TempDir(), Home: remote.home}); !errors.Is(err, mount.ErrMountRunning) {
		t.Errorf("second mount of the home: %v, want ErrMountRunning", err)
	}
	if m, err := sessionmgr.Open(sessionmgr.Options{Home: remote.home}); err == nil {
		m.Close()
		t.Fatal("the catalog opened while the mount holds it: this test would prove nothing")
	}
	g := &globals{home: remote.home, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	a, err := g.connect()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.(remoteService); !ok {
		t.Errorf("connect with a mount running gave %T, want remoteService", a)
	}
	g.close()
	if out := remote.must("library", "ls", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("library ls through the socket: %q", out)
	}
	got := cliScenario(t, remote, src, func(itemID string) string {
		sid, err := mt.Manager.CreateUpdateSession(context.Background(), sessionmgr.UpdateSessionCreateSpec{LibraryItemID: itemID}, "")
		if err != nil {
			t.Fatal(err)
		}
		return sid
	})
	if got != want {
		t.Errorf("outputs differ with a mount running:\n%s", lineDiff(want, got))
	}
	t.Logf("transcript:\n%s", got)
}

// lineDiff shows the lines of want and got that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  no mount: %s\n  mount:    %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}

// TestSessionLsShowsAWriteInTheMount: a file being written through the
// mount is an ACTIVE update session whose bytes `clfs session ls` shows,
// and DONE once the file is closed.
func TestSessionLsShowsAWriteInTheMount(t *testing.T) {
	e := newCLI(t)
	mnt, _ := mountCLIHome(t, e.home)
	if err := os.MkdirAll(filepath.Join(mnt, "lib", "item"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(mnt, "lib", "item", "f"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := randomBytes(t, 3<<20)
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	type session struct {
		ID    string `json:"id"`
		Type  string `json:"type"`
		State string `json:"state"`
		Bytes int64  `json:"x_bytes_transferred"`
	}
	var sessions []session
	e.json(&sessions, "session", "ls", "--json")
	var live *session
	for i, s := range sessions {
		if s.Type == "update" && s.State == "ACTIVE" {
			live = &sessions[i]
		}
	}
	if live == nil || live.Bytes != int64(len(data)) {
		t.Fatalf("while writing: sessions %+v, want an ACTIVE update session with x_bytes_transferred %d", sessions, len(data))
	}
	if files := e.files("lib/item"); len(files) != 0 {
		t.Errorf("uncommitted file listed: %+v", files)
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e.json(&sessions, "session", "ls", "--json")
	for _, s := range sessions {
		if s.State == "ACTIVE" {
			t.Errorf("session still ACTIVE after close: %+v", s)
		}
		if s.ID == live.ID && (s.State != "DONE" || s.Bytes != int64(len(data))) {
			t.Errorf("after close: %+v, want DONE with %d bytes", s, len(data))
		}
	}
	files := e.files("lib/item")
	sum := sha256.Sum256(data)
	if len(files) != 1 || files[0].Name != "f" || files[0].Size != int64(len(data)) || files[0].ChecksumInfo.Checksum != hex.EncodeToString(sum[:]) {
		t.Errorf("after close: files %+v", files)
	}
}
