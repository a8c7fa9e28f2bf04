package mount

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"clfs/sessionmgr"
)

// testMount is a real mount of a home, unmounted at the end of the test
// (or earlier, by unmount, to mount the same home again).
type testMount struct {
	*Mount
	t    *testing.T
	Home string
	Dir  string // the mountpoint

	done chan error
	once sync.Once
}

// newMount mounts a fresh home at a fresh mountpoint. With CLFS_TEST_META
// set to etcd://HOST:PORT[,...] its catalog is a fresh prefix on that
// cluster (the home remembers it for remounts), else the home's Badger.
func newMount(t *testing.T) *testMount {
	t.Helper()
	home := t.TempDir()
	if base := os.Getenv("CLFS_TEST_META"); base != "" {
		url := testCatalogURL(t, strings.TrimSuffix(base, "/"), "mount")
		// Opened once, so that the home remembers the URL; every mount
		// of it then opens the same catalog.
		m, err := sessionmgr.Open(sessionmgr.Options{Home: home, Meta: url, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return mountHome(t, home, newMountpoint(t))
}

func newMountpoint(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mountHome mounts home at dir for real (DirectMount as root).
func mountHome(t *testing.T, home, dir string) *testMount {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("these tests mount for real and need /dev/fuse: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	mt, err := Start(Options{Mountpoint: dir, Home: home, Logger: logger, Debug: os.Getenv("CLFS_FUSE_DEBUG") != ""})
	if err != nil {
		t.Fatal(err)
	}
	tm := &testMount{Mount: mt, t: t, Home: home, Dir: dir, done: make(chan error, 1)}
	go func() { tm.done <- mt.Wait() }()
	t.Cleanup(tm.unmount)
	return tm
}

// unmount unmounts and waits until the session manager is closed, so the
// home can be mounted again. Calling it again does nothing.
func (tm *testMount) unmount() {
	tm.once.Do(func() {
		if err := tm.Unmount(); err != nil {
			tm.t.Errorf("unmount: %v", err)
			// Leave no mount behind: detach it, the server stops once
			// the last open file of it is closed.
			if err := syscall.Unmount(tm.Dir, syscall.MNT_DETACH); err != nil {
				tm.t.Errorf("lazy unmount: %v", err)
				return
			}
		}
		select {
		case err := <-tm.done:
			if err != nil {
				tm.t.Errorf("close after unmount: %v", err)
			}
		case <-time.After(10 * time.Second):
			tm.t.Errorf("mount %s: Wait did not return after unmount", tm.Dir)
		}
	})
}

// remount unmounts and mounts the same home at dir ("" = the same
// mountpoint).
func (tm *testMount) remount(t *testing.T, dir string) *testMount {
	t.Helper()
	tm.unmount()
	if dir == "" {
		dir = tm.Dir
	}
	return mountHome(t, tm.Home, dir)
}

// path joins elements under the mountpoint.
func (tm *testMount) path(elem ...string) string {
	return filepath.Join(append([]string{tm.Dir}, elem...)...)
}

// mkItem creates /lib/item through the mount and returns its path.
func (tm *testMount) mkItem(t *testing.T, lib, item string) string {
	t.Helper()
	p := tm.path(lib, item)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// item finds an item by library and item name through the API.
func (tm *testMount) item(t *testing.T, lib, item string) *sessionmgr.Item {
	t.Helper()
	l, err := tm.Manager.LibraryByName(t.Context(), lib)
	if err != nil {
		t.Fatalf("library %s: %v", lib, err)
	}
	it, err := tm.Manager.ItemByName(t.Context(), l.ID, item)
	if err != nil {
		t.Fatalf("item %s/%s: %v", lib, item, err)
	}
	return it
}

// files lists an item's committed files through the API, by name.
func (tm *testMount) files(t *testing.T, lib, item string) map[string]sessionmgr.File {
	t.Helper()
	fs, err := tm.Manager.ListFiles(t.Context(), tm.item(t, lib, item).ID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]sessionmgr.File{}
	for _, f := range fs {
		out[f.Name] = f
	}
	return out
}

// file is one committed file through the API.
func (tm *testMount) file(t *testing.T, lib, item, name string) *sessionmgr.File {
	t.Helper()
	f, err := tm.Manager.GetFile(t.Context(), tm.item(t, lib, item).ID, name)
	if err != nil {
		t.Fatalf("file %s/%s/%s: %v", lib, item, name, err)
	}
	return f
}

// result is what a command did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

const toolTimeout = time.Minute

// tool runs a real binary and returns its output and exit code; it fails
// the test only if the binary could not be started.
func tool(t *testing.T, name string, args ...string) result {
	t.Helper()
	return toolIn(t, "", nil, name, args...)
}

// toolIn is tool with a working directory and extra environment.
func toolIn(t *testing.T, dir string, env []string, name string, args ...string) result {
	t.Helper()
	// A hung mount must fail the test, not the whole run.
	ctx, cancel := context.WithTimeout(t.Context(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if dir != "" {
		// Not cmd.Dir: the child would chdir into the mount between
		// fork and exec, while Go's vfork holds this process's thread
		// outside the scheduler; a garbage collection then waits for
		// that thread forever, and the mount this process serves never
		// answers the child's request. The shell changes directory
		// after exec instead.
		cmd = exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", `cd "$0" && exec "$@"`, dir, name}, args...)...)
	}
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %q: killed after %v (is the mount hung?)\nstdout:\n%s\nstderr:\n%s", name, args, toolTimeout, r.stdout, r.stderr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %q: %v", name, args, err)
	}
	return r
}

// mustTool runs a binary and fails the test unless it exits 0.
func mustTool(t *testing.T, name string, args ...string) result {
	t.Helper()
	r := tool(t, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %q: exit %d\nstdout:\n%s\nstderr:\n%s", name, args, r.code, r.stdout, r.stderr)
	}
	return r
}

// shell runs a bash command line and fails the test unless it exits 0.
func shell(t *testing.T, script string) result {
	t.Helper()
	return mustTool(t, "bash", "-c", script)
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// writeFile writes data at path (making its directory) with mode and,
// if mtime is not zero, that modification time.
func writeFile(t *testing.T, path string, data []byte, mode os.FileMode, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantContent fails unless path holds exactly want.
func wantContent(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: content differs: got %d bytes %s, want %d bytes %s", path, len(got), short(got), len(want), short(want))
	}
}

func short(b []byte) string {
	if len(b) > 32 {
		return "sha256:" + sha256Hex(b)[:16]
	}
	return "\"" + string(b) + "\""
}

func lstat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	return &st
}

// treeOpts says what compareTrees compares beyond names and content.
type treeOpts struct {
	mode      bool // permission bits of files and directories
	fileMtime bool // mtime of files, to the nanosecond
	dirMtime  bool // mtime of directories, to the nanosecond
}

// compareTrees fails unless the trees at a and b hold the same names, of
// the same types, files with the same bytes and, as asked, modes and
// mtimes. It returns the number of regular files compared.
func compareTrees(t *testing.T, a, b string, o treeOpts) int {
	t.Helper()
	names := func(root string) []string {
		var out []string
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", root, err)
		}
		sort.Strings(out)
		return out
	}
	na, nb := names(a), names(b)
	if strings.Join(na, "\n") != strings.Join(nb, "\n") {
		t.Fatalf("trees differ:\n%s: %q\n%s: %q", a, na, b, nb)
	}
	files := 0
	for _, rel := range na {
		pa, pb := filepath.Join(a, rel), filepath.Join(b, rel)
		sa, sb := lstat(t, pa), lstat(t, pb)
		if sa.Mode&syscall.S_IFMT != sb.Mode&syscall.S_IFMT {
			t.Errorf("%s: type %o vs %o", rel, sa.Mode&syscall.S_IFMT, sb.Mode&syscall.S_IFMT)
			continue
		}
		dir := sa.Mode&syscall.S_IFMT == syscall.S_IFDIR
		if o.mode && sa.Mode&0o7777 != sb.Mode&0o7777 && rel != "." {
			t.Errorf("%s: mode %o vs %o", rel, sa.Mode&0o7777, sb.Mode&0o7777)
		}
		if (dir && o.dirMtime && rel != ".") || (!dir && o.fileMtime) {
			if sa.Mtim != sb.Mtim {
				t.Errorf("%s: mtime %v vs %v", rel, time.Unix(sa.Mtim.Unix()), time.Unix(sb.Mtim.Unix()))
			}
		}
		if dir {
			continue
		}
		files++
		if sa.Size != sb.Size {
			t.Errorf("%s: size %d vs %d", rel, sa.Size, sb.Size)
			continue
		}
		if !bytes.Equal(readFile(t, pa), readFile(t, pb)) {
			t.Errorf("%s: content differs", rel)
		}
	}
	return files
}

// eventually retries f for up to two seconds: for what the kernel does
// after close(2) returns (RELEASE is asynchronous).
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ctlLogger logs a daemon's lines into the test's, Debug included.
func ctlLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(ctlWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type ctlWriter struct{ t testing.TB }

func (w ctlWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func ptrTo[T any](v T) *T { return &v }
