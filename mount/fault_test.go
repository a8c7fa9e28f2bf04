package mount

// The fault suite: the storage backing full at each stage of a write and
// during reads, the catalog directory unwritable, stored content damaged
// behind clfs's back. Guarantee 4 of ARCHITECTURE.md: a clear errno and
// one log line, never a panic, never lost data.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"clfs/sessionmgr"
)

// logCapture is a slog destination the test can search, and echoes to
// the test log.
type logCapture struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.buf.Write(p)
	c.mu.Unlock()
	c.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// lines returns the logged lines that contain every one of words.
func (c *logCapture) lines(words ...string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, l := range strings.Split(c.buf.String(), "\n") {
		ok := l != ""
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// mountLogged mounts a fresh home with its log captured.
func mountLogged(t *testing.T) (*testMount, *logCapture) {
	t.Helper()
	return mountLoggedOpts(t, Options{})
}

// mountLoggedOpts is mountLogged with options (Mountpoint, Home and
// Logger are filled in).
func mountLoggedOpts(t *testing.T, opts Options) (*testMount, *logCapture) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("these tests mount for real and need /dev/fuse: %v", err)
	}
	logs := &logCapture{t: t}
	home, dir := t.TempDir(), newMountpoint(t)
	opts.Mountpoint, opts.Home, opts.Logger = dir, home, slog.New(slog.NewTextHandler(logs, nil))
	mt, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	tm := &testMount{Mount: mt, t: t, Home: home, Dir: dir, done: make(chan error, 1)}
	go func() { tm.done <- mt.Wait() }()
	t.Cleanup(tm.unmount)
	return tm, logs
}

// blobPath is where a committed file's content is stored.
func (tm *testMount) blobPath(t *testing.T, lib, item, name string) string {
	t.Helper()
	sha := tm.file(t, lib, item, name).ChecksumInfo.Checksum
	return filepath.Join(tm.Home, "storage", "content", sha[:2], sha)
}

// TestFaultDamagedContent: a stored blob truncated, or corrupted with its
// size intact, behind clfs's back, on a mount with --verify-reads: reading
// the file fails with EIO and a log line names it; fsck names it; other
// files read as before, and the damaged file can be written again.
func TestFaultDamagedContent(t *testing.T) {
	tm, logs := mountLoggedOpts(t, Options{VerifyReads: true})
	dir := tm.mkItem(t, "lib", "item")
	good, cut, flipped := randomBytes(300000), randomBytes(1<<20), randomBytes(2<<20+5)
	for name, data := range map[string][]byte{"good.bin": good, "cut.bin": cut, "flipped.bin": flipped} {
		writeFile(t, filepath.Join(dir, name), data, 0o644, time.Time{})
	}
	if err := os.Truncate(tm.blobPath(t, "lib", "item", "cut.bin"), 4096); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(tm.blobPath(t, "lib", "item", "flipped.bin"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{^flipped[1<<20]}, 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()

	for _, name := range []string{"cut.bin", "flipped.bin"} {
		p := filepath.Join(dir, name)
		if got, err := os.ReadFile(p); !errors.Is(err, syscall.EIO) {
			t.Errorf("read of %s with damaged content: %d bytes, %v; want EIO", name, len(got), err)
		}
		if r := tool(t, "cp", p, filepath.Join(t.TempDir(), name)); r.code == 0 {
			t.Errorf("cp of %s with damaged content exits 0; want an error\n%s", name, r)
		}
		if l := logs.lines("/lib/item/"+name, "input/output error"); len(l) == 0 {
			t.Errorf("no log line names /lib/item/%s with EIO", name)
		}
	}
	wantContent(t, filepath.Join(dir, "good.bin"), good)
	rep, err := tm.Manager.Fsck(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, p := range rep.Problems {
		named[p.File] = true
	}
	if len(rep.Problems) != 2 || !named["lib/item/cut.bin"] || !named["lib/item/flipped.bin"] {
		t.Errorf("fsck problems %+v; want exactly lib/item/cut.bin and lib/item/flipped.bin", rep.Problems)
	}
	// Nothing else breaks: new versions of the damaged files commit and
	// read back.
	for _, name := range []string{"cut.bin", "flipped.bin"} {
		v2 := randomBytes(70000)
		writeFile(t, filepath.Join(dir, name), v2, 0o644, time.Time{})
		wantContent(t, filepath.Join(dir, name), v2)
	}
	if rep, err := tm.Manager.Fsck(context.Background(), nil); err != nil || len(rep.Problems) != 0 {
		t.Errorf("fsck after rewriting the damaged files: %v %+v", err, rep)
	}
}

// TestFaultDamagedContentReadToEnd: reading only part of a file with
// corrupted content is not verified (that would mean hashing the whole
// file at open), but a reader that goes on to the end gets EIO for the
// last bytes instead of a silent success.
func TestFaultDamagedContentReadToEnd(t *testing.T) {
	tm, _ := mountLoggedOpts(t, Options{VerifyReads: true})
	dir := tm.mkItem(t, "lib", "item")
	data := randomBytes(1 << 20)
	p := filepath.Join(dir, "f")
	writeFile(t, p, data, 0o644, time.Time{})
	blob := tm.blobPath(t, "lib", "item", "f")
	f, _ := os.OpenFile(blob, os.O_WRONLY, 0)
	f.WriteAt([]byte{^data[10]}, 10)
	f.Close()
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	head := make([]byte, 4096)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatalf("first block of a corrupted file: %v (only a read that completes the file is checked)", err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, syscall.EIO) {
		t.Fatalf("reading a corrupted file to its end: %v, want EIO", err)
	}
}

// TestFaultDamagedContentTrusted: without --verify-reads a committed blob
// is trusted (passthrough): a blob corrupted with its size intact reads
// back as it now is, without an error, and fsck is what names it; a blob
// whose size changed still fails at open with EIO (the size check stays).
func TestFaultDamagedContentTrusted(t *testing.T) {
	tm, _ := mountLogged(t)
	dir := tm.mkItem(t, "lib", "item")
	cut, flipped := randomBytes(1<<20), randomBytes(2<<20+5)
	writeFile(t, filepath.Join(dir, "cut.bin"), cut, 0o644, time.Time{})
	writeFile(t, filepath.Join(dir, "flipped.bin"), flipped, 0o644, time.Time{})
	if err := os.Truncate(tm.blobPath(t, "lib", "item", "cut.bin"), 4096); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(tm.blobPath(t, "lib", "item", "flipped.bin"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	damaged := append([]byte(nil), flipped...)
	damaged[1<<20] ^= 0xff
	if _, err := f.WriteAt(damaged[1<<20:1<<20+1], 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, err := os.ReadFile(filepath.Join(dir, "cut.bin")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read of a blob of the wrong size: %d bytes, %v; want EIO at open", len(got), err)
	}
	wantContent(t, filepath.Join(dir, "flipped.bin"), damaged)
	rep, err := tm.Manager.Fsck(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 2 {
		t.Errorf("fsck problems %+v; want cut.bin and flipped.bin", rep.Problems)
	}
}

// smallDiskHome is a home whose default storage backing is a tmpfs of
// size bytes, for a library created on it.
func fullLibrary(t *testing.T, tm *testMount, size string) (item, disk string) {
	t.Helper()
	disk = smallDisk(t, size)
	if _, err := tm.Manager.CreateLibrary(context.Background(), sessionmgr.LibraryCreateSpec{Name: "small", StorageDir: disk}, ""); err != nil {
		t.Fatal(err)
	}
	return tm.mkItem(t, "small", "item"), disk
}

// fill takes all free space of the filesystem at dir, and gives it back
// at the end of the test (or when release is called).
func fill(t *testing.T, dir string) (release func()) {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	release = func() { os.Remove(p) }
	t.Cleanup(release)
	return release
}

// TestFaultFullAtEveryStage: the backing fills up (1) before an append,
// whose copy of the committed content then fails, (2) between the last
// write and the close, which must then fail the commit or succeed whole,
// (3) while a file is being read. Each time the previous version
// survives, the error is ENOSPC, and once there is room writes work.
func TestFaultFullAtEveryStage(t *testing.T) {
	tm, logs := mountLogged(t)
	item, disk := fullLibrary(t, tm, "16m")
	p := filepath.Join(item, "f.bin")
	v1 := randomBytes(3 << 20)
	writeFile(t, p, v1, 0o644, time.Time{})

	t.Run("append needs a copy", func(t *testing.T) {
		release := fill(t, disk)
		defer release()
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, werr := f.Write([]byte("more"))
		cerr := f.Close()
		if !errors.Is(werr, syscall.ENOSPC) && !errors.Is(cerr, syscall.ENOSPC) {
			t.Fatalf("append on a full backing: write %v, close %v; want ENOSPC", werr, cerr)
		}
		wantContent(t, p, v1)
	})

	t.Run("full at commit", func(t *testing.T) {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		v2 := randomBytes(2 << 20)
		if _, err := f.Write(v2); err != nil {
			t.Fatal(err)
		}
		release := fill(t, disk) // staged bytes are in; the commit finds no room
		defer release()
		cerr := f.Close()
		// Committing is an fsync and a hard link of bytes already
		// staged: it needs no room, so it may succeed; if it fails, it
		// is ENOSPC and v1 stays.
		switch {
		case cerr == nil:
			wantContent(t, p, v2)
			v1 = v2
		case errors.Is(cerr, syscall.ENOSPC):
			wantContent(t, p, v1)
		default:
			t.Fatalf("close on a backing that filled after the writes: %v, want nil or ENOSPC", cerr)
		}
	})

	t.Run("full during a read", func(t *testing.T) {
		r, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		head := make([]byte, 1<<20)
		if _, err := io.ReadFull(r, head); err != nil {
			t.Fatal(err)
		}
		release := fill(t, disk)
		defer release()
		rest, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(append(head, rest...), v1) {
			t.Fatalf("read on a backing that filled meanwhile: %v", err)
		}
		wantContent(t, p, v1) // a new reader too
		out := filepath.Join(t.TempDir(), "copy")
		mustTool(t, "cp", p, out)
		wantContent(t, out, v1)
	})

	staged, _ := filepath.Glob(filepath.Join(disk, "staging", "*", "*"))
	if len(staged) != 0 {
		t.Errorf("staging left after the failures: %v", staged)
	}
	if len(logs.lines("no space left on device")) == 0 {
		t.Errorf("no log line says ENOSPC (no space left on device)")
	}
	v3 := randomBytes(100000)
	writeFile(t, p, v3, 0o644, time.Time{})
	wantContent(t, p, v3)
	if rep, err := tm.Manager.Fsck(context.Background(), nil); err != nil || len(rep.Problems) != 0 {
		t.Errorf("fsck after the faults: %v %+v", err, rep)
	}
}

// TestFaultCatalogUnwritable: a home whose catalog directory is on a
// read-only filesystem cannot be mounted; Start says why (naming the
// directory) instead of panicking, and leaves no mount behind.
func TestFaultCatalogUnwritable(t *testing.T) {
	home := t.TempDir()
	meta := filepath.Join(home, "meta")
	if err := os.Mkdir(meta, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--bind", meta, meta}, {"-o", "remount,bind,ro", meta}} {
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v (needs root): %v\n%s", args, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("umount", "-l", meta).Run() })
	dir := newMountpoint(t)
	mt, err := Start(Options{Mountpoint: dir, Home: home, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err == nil {
		mt.Unmount()
		mt.Wait()
		t.Fatal("mounted a home whose catalog directory is read-only")
	}
	if !strings.Contains(err.Error(), meta) && !strings.Contains(err.Error(), "read-only") {
		t.Errorf("error %q names neither the catalog directory nor the cause", err)
	}
	if err := CheckMountpoint(dir); err != nil {
		t.Errorf("after the failed mount: %v", err)
	}
}
