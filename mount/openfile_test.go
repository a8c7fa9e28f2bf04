package mount

// Open-file rules real tools rely on, end to end through the kernel: a
// name replaced under an open, set-ID bits after another user's change,
// atime, download sessions that end with their readers, and a daemon log
// without go-fuse's splice noise. mount/posixdiff_test.go compares the
// rest against a native directory.

import (
	"bytes"
	"fmt"
	stdlog "log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOpenWhileRenamedOver: one goroutine writes tmp and renames it over
// target in a loop (rsync, editors, sed -i, os.replace); another opens and
// reads target in a loop. target always exists, so every open succeeds
// and reads one complete version. About one open in six failed with
// ENOENT when the daemon resolved the inode the kernel had looked up by
// its name, which the rename had just taken away.
func TestOpenWhileRenamedOver(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	target, tmp := filepath.Join(dir, "target"), filepath.Join(dir, "tmp")
	version := func(i int) []byte { return []byte(fmt.Sprintf("version %06d\n", i)) }
	if err := os.WriteFile(target, version(0), 0o644); err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var renames atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; !stop.Load(); i++ {
			if err := os.WriteFile(tmp, version(i), 0o644); err != nil {
				t.Error(err)
				return
			}
			if err := os.Rename(tmp, target); err != nil {
				t.Error(err)
				return
			}
			renames.Add(1)
		}
	}()
	opens, failed := 0, 0
	var firstErr error
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) || renames.Load() < 100 {
		opens++
		b, err := os.ReadFile(target)
		if err != nil {
			failed++
			firstErr = cmpOr(firstErr, err)
			continue
		}
		if len(b) != len(version(0)) || !bytes.HasPrefix(b, []byte("version ")) {
			t.Errorf("read %q: not one complete version", b)
		}
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("only %d renames in 23 s", renames.Load())
		}
	}
	stop.Store(true)
	wg.Wait()
	if failed > 0 {
		t.Fatalf("%d of %d opens of a name renamed over %d times failed, the first with %v", failed, opens, renames.Load(), firstErr)
	}
	t.Logf("%d opens during %d renames over the name, none failed", opens, renames.Load())
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// TestSetIDClearedByOthersChanges: a change of content by a process
// without CAP_FSETID clears set-user-ID, and set-group-ID with group
// execute, as on a native filesystem; the kernel cannot do it for clfs,
// whose writes bypass its page cache. Each case runs on a native
// directory and on an --allow-other mount and must end in the same mode.
func TestSetIDClearedByOthersChanges(t *testing.T) {
	needRoot(t)
	dir := openDir(t)
	tm := mountWith(t, filepath.Join(dir, "home"), filepath.Join(dir, "mnt"), Options{AllowOther: true})
	item := tm.mkItem(t, "lib", "item")
	native := filepath.Join(dir, "native")
	for _, d := range []string{item, native} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	const other = 1000
	cases := []struct {
		name string
		mode uint32 // with the set-ID bits as POSIX numbers them
		act  func(path string)
	}{
		{"append by another user", 0o6777, func(p string) { wantPeer(t, other, "append", p, "ok") }},
		{"append by another user, setgid without group exec", 0o6767, func(p string) { wantPeer(t, other, "append", p, "ok") }},
		{"truncate by another user", 0o6777, func(p string) { wantPeer(t, other, "truncate", p, "ok") }},
		{"O_TRUNC by another user", 0o6777, func(p string) { wantPeer(t, other, "rewrite", p, "ok") }},
		{"append by root", 0o6777, func(p string) {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("root"))
			f.Close()
		}},
		{"chown by root", 0o6777, func(p string) {
			if err := os.Chown(p, other, other); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for i, c := range cases {
		var modes []uint32
		for _, d := range []string{native, item} {
			p := filepath.Join(d, fmt.Sprintf("f%d", i))
			if err := os.WriteFile(p, []byte("content\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Chmod(p, c.mode); err != nil {
				t.Fatal(err)
			}
			c.act(p)
			var st syscall.Stat_t
			eventually(t, "stat "+p, func() error { return syscall.Stat(p, &st) })
			modes = append(modes, st.Mode&0o7777)
		}
		if modes[0] != modes[1] {
			t.Errorf("%s: mode %o on the mount, %o on a native directory", c.name, modes[1], modes[0])
		}
	}
}

// TestAtimeStoredAndNoatime: atime reads back exactly as utimensat set it
// (UTIME_OMIT leaves it, UTIME_NOW moves it); reads do not move it, and
// /proc/mounts says noatime.
func TestAtimeStoredAndNoatime(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	p := filepath.Join(dir, "f")
	writeFile(t, p, []byte("data"), 0o644, time.Time{})

	set := func(atime, mtime unix.Timespec) {
		t.Helper()
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{atime, mtime}, 0); err != nil {
			t.Fatal(err)
		}
	}
	at, mt := unix.Timespec{Sec: 1000, Nsec: 1}, unix.Timespec{Sec: 2000, Nsec: 2}
	set(at, mt)
	if st := lstat(t, p); st.Atim != syscall.Timespec(at) || st.Mtim != syscall.Timespec(mt) {
		t.Fatalf("after utimensat: atime %v mtime %v, want %v %v", st.Atim, st.Mtim, at, mt)
	}
	set(unix.Timespec{Nsec: unix.UTIME_OMIT}, unix.Timespec{Sec: 3000})
	if st := lstat(t, p); st.Atim != syscall.Timespec(at) || st.Mtim.Sec != 3000 {
		t.Fatalf("after UTIME_OMIT on atime: atime %v mtime %v, want %v and 3000", st.Atim, st.Mtim, at)
	}
	readFile(t, p)
	if st := lstat(t, p); st.Atim != syscall.Timespec(at) {
		t.Fatalf("a read moved atime to %v (the mount is noatime)", st.Atim)
	}
	before := time.Now()
	set(unix.Timespec{Nsec: unix.UTIME_NOW}, unix.Timespec{Nsec: unix.UTIME_OMIT})
	if st := lstat(t, p); time.Unix(st.Atim.Unix()).Before(before.Add(-time.Second)) || st.Mtim.Sec != 3000 {
		t.Fatalf("after UTIME_NOW on atime: atime %v mtime %v, want about %v and 3000", st.Atim, st.Mtim, before)
	}
	// Through a remount: stored, not cached.
	set(at, mt)
	tm = tm.remount(t, "")
	if st := lstat(t, tm.path("lib", "item", "f")); st.Atim != syscall.Timespec(at) {
		t.Fatalf("atime after a remount: %v, want %v", st.Atim, at)
	}
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[1] == tm.Dir {
			if !strings.Contains(","+f[3]+",", ",noatime,") {
				t.Fatalf("/proc/mounts options of the mount: %s, want noatime", f[3])
			}
			return
		}
	}
	t.Fatalf("%s not in /proc/self/mounts", tm.Dir)
}

// TestReadSessionsEndWithTheirReaders: the download session a reader
// opens ends when the last reader closes, so `clfs session ls` does not
// fill with sessions nobody reads through.
func TestReadSessionsEndWithTheirReaders(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	writeFile(t, filepath.Join(dir, "a"), []byte("aaa"), 0o644, time.Time{})
	writeFile(t, filepath.Join(dir, "b"), []byte("bbb"), 0o644, time.Time{})
	item := tm.item(t, "lib", "item").ID
	sessions := func() int {
		ds, err := tm.Manager.ListDownloadSessions(t.Context(), item)
		if err != nil {
			t.Fatal(err)
		}
		return len(ds)
	}
	f, err := os.Open(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(make([]byte, 3)); err != nil {
		t.Fatal(err)
	}
	if n := sessions(); n != 1 {
		t.Fatalf("%d download sessions while a reader is open, want 1", n)
	}
	readFile(t, filepath.Join(dir, "b")) // opens and closes another reader
	f.Close()
	eventually(t, "the read session ends with its last reader", func() error {
		if n := sessions(); n != 0 {
			return fmt.Errorf("%d download sessions after every reader closed, want 0", n)
		}
		return nil
	})
}

// lockedBuffer collects a mount's log.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogHasNoSpliceNoise: reading a large file logged go-fuse's
// unstructured "trySplice: splice: want 1052688 bytes, max pipe size
// 1048576" on every 1 MiB read. Every line of the daemon's log must be a
// structured record.
func TestLogHasNoSpliceNoise(t *testing.T) {
	// go-fuse logged through the standard logger: catch that too.
	var std lockedBuffer
	stdlog.SetOutput(&std)
	t.Cleanup(func() { stdlog.SetOutput(os.Stderr) })
	var log lockedBuffer
	home, dir := t.TempDir(), newMountpoint(t)
	mt, err := Start(Options{Mountpoint: dir, Home: home, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	tm := &testMount{Mount: mt, t: t, Home: home, Dir: dir, done: make(chan error, 1)}
	go func() { tm.done <- mt.Wait() }()
	t.Cleanup(tm.unmount)
	item := tm.mkItem(t, "lib", "item")
	data := randomBytes(8 << 20)
	writeFile(t, filepath.Join(item, "big"), data, 0o644, time.Time{})
	wantContent(t, filepath.Join(item, "big"), data)
	tm.unmount()
	out := std.String() + log.String()
	if strings.Contains(out, "trySplice") {
		t.Errorf("the log has go-fuse's splice failures:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if line != "" && !strings.HasPrefix(line, "time=") {
			t.Errorf("an unstructured log line: %q", line)
		}
	}
}
