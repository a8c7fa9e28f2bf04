package mount

// Everyday commands on the namespace: mv, rm, rmdir, mkdir, touch,
// truncate, shell redirections, sed -i, Python's os.replace, dd.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"clfs/sessionmgr"
)

// dirNames lists a directory of the mount.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func wantNames(t *testing.T, dir string, want ...string) {
	t.Helper()
	if got := strings.Join(dirNames(t, dir), " "); got != strings.Join(want, " ") {
		t.Fatalf("%s lists %q, want %q", dir, got, strings.Join(want, " "))
	}
}

func wantGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("%s: lstat = %v, want ENOENT", path, err)
	}
}

// TestMvWithinItem: mv renames in place (same inode, metadata only), also
// over an existing name, which it replaces.
func TestMvWithinItem(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	a, b := randomBytes(100000), []byte("other\n")
	writeFile(t, filepath.Join(dir, "a"), a, 0o640, time.Unix(1500000000, 1))
	writeFile(t, filepath.Join(dir, "b"), b, 0o644, time.Time{})
	ino := lstat(t, filepath.Join(dir, "a")).Ino

	mustTool(t, "mv", filepath.Join(dir, "a"), filepath.Join(dir, "c"))
	wantNames(t, dir, "b", "c")
	wantContent(t, filepath.Join(dir, "c"), a)
	if st := lstat(t, filepath.Join(dir, "c")); st.Ino != ino || st.Mode&0o777 != 0o640 || st.Mtim.Sec != 1500000000 {
		t.Fatalf("renamed file: ino %d mode %o mtime %d, want ino %d mode 640 mtime 1500000000", st.Ino, st.Mode, st.Mtim.Sec, ino)
	}

	mustTool(t, "mv", filepath.Join(dir, "c"), filepath.Join(dir, "b")) // over b
	wantNames(t, dir, "b")
	wantContent(t, filepath.Join(dir, "b"), a)
	if st := lstat(t, filepath.Join(dir, "b")); st.Ino != ino {
		t.Fatalf("file renamed over another: ino %d, want %d", st.Ino, ino)
	}
	wantAPIFiles(t, tm, "lib", "item", map[string][]byte{"b": a})
}

// TestMvAcrossItems: rename between items is EXDEV, so mv copies and
// unlinks; the content ends in the other item, in another library too.
func TestMvAcrossItems(t *testing.T) {
	tm := newMount(t)
	src := tm.mkItem(t, "lib", "from")
	dst := tm.mkItem(t, "lib", "to")
	far := tm.mkItem(t, "lib2", "far")
	data := randomBytes(300000)
	writeFile(t, filepath.Join(src, "f"), data, 0o600, time.Unix(1400000000, 7))

	if err := syscall.Rename(filepath.Join(src, "f"), filepath.Join(dst, "f")); !errors.Is(err, syscall.EXDEV) {
		t.Fatalf("rename across items: %v, want EXDEV", err)
	}
	mustTool(t, "mv", filepath.Join(src, "f"), dst)
	wantGone(t, filepath.Join(src, "f"))
	wantContent(t, filepath.Join(dst, "f"), data)
	if st := lstat(t, filepath.Join(dst, "f")); st.Mode&0o777 != 0o600 || st.Mtim != (syscall.Timespec{Sec: 1400000000, Nsec: 7}) {
		t.Fatalf("mv kept mode %o mtime %v", st.Mode&0o777, st.Mtim)
	}
	wantAPIFiles(t, tm, "lib", "from", nil)
	wantAPIFiles(t, tm, "lib", "to", map[string][]byte{"f": data})

	mustTool(t, "mv", filepath.Join(dst, "f"), filepath.Join(far, "g"))
	wantNames(t, dst)
	wantContent(t, filepath.Join(far, "g"), data)
	wantAPIFiles(t, tm, "lib2", "far", map[string][]byte{"g": data})
}

// TestRmAndRmdir: rm removes a file; rmdir refuses a non-empty item or
// library (ENOTEMPTY) and removes an empty one.
func TestRmAndRmdir(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	writeFile(t, filepath.Join(dir, "f"), []byte("x"), 0o644, time.Time{})
	itemID := tm.item(t, "lib", "item").ID

	if err := syscall.Rmdir(dir); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("rmdir of a non-empty item: %v, want ENOTEMPTY", err)
	}
	if r := tool(t, "rmdir", dir); r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("rmdir of a non-empty item: %v", r)
	}
	if err := syscall.Rmdir(tm.path("lib")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("rmdir of a non-empty library: %v, want ENOTEMPTY", err)
	}

	mustTool(t, "rm", filepath.Join(dir, "f"))
	wantGone(t, filepath.Join(dir, "f"))
	wantAPIFiles(t, tm, "lib", "item", nil)
	if r := tool(t, "rm", filepath.Join(dir, "f")); r.code == 0 {
		t.Fatal("rm of a missing file succeeded")
	}

	mustTool(t, "rmdir", dir)
	wantGone(t, dir)
	if _, err := tm.Manager.GetItem(t.Context(), itemID); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Fatalf("API still has the removed item: %v", err)
	}
	mustTool(t, "rmdir", tm.path("lib"))
	wantGone(t, tm.path("lib"))
	if libs, err := tm.Manager.ListLibraries(t.Context()); err != nil || len(libs) != 0 {
		t.Fatalf("API lists %v, %v after rmdir of the library", libs, err)
	}
}

// TestMkdirDepths: depth 1 makes a library, depth 2 an item, depth 3 is
// EPERM (items are flat).
func TestMkdirDepths(t *testing.T) {
	tm := newMount(t)
	mustTool(t, "mkdir", "-m", "0750", tm.path("lib"))
	mustTool(t, "mkdir", tm.path("lib", "item"))
	if _, err := tm.Manager.LibraryByName(t.Context(), "lib"); err != nil {
		t.Fatalf("library: %v", err)
	}
	it := tm.item(t, "lib", "item")
	if st := lstat(t, tm.path("lib")); st.Mode != syscall.S_IFDIR|0o750 {
		t.Errorf("library mode %o, want dir 0750", st.Mode)
	}
	if st := lstat(t, tm.path("lib", "item")); st.Ino == 0 || it.Posix.Ino == 0 {
		t.Errorf("item inode %d (API %d)", st.Ino, it.Posix.Ino)
	}
	if err := syscall.Mkdir(tm.path("lib", "item", "sub"), 0o755); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("mkdir in an item: %v, want EPERM", err)
	}
	if r := tool(t, "mkdir", "-p", tm.path("lib", "item", "sub", "deeper")); r.code == 0 {
		t.Fatal("mkdir -p below an item succeeded")
	}
	if err := syscall.Mkdir(tm.path("lib"), 0o755); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("mkdir of an existing library: %v, want EEXIST", err)
	}
	wantNames(t, tm.path("lib", "item"))
}

// TestTouch: touch of a new name commits an empty file; touch of an
// existing file changes its mtime only: same version, same content
// version of the item, no update session.
func TestTouch(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	mustTool(t, "touch", filepath.Join(dir, "new"))
	eventually(t, "empty file committed", func() error {
		f, ok := tm.files(t, "lib", "item")["new"]
		if !ok || f.Size != 0 || f.ChecksumInfo == nil || f.ChecksumInfo.Checksum != sha256Hex(nil) {
			return fmt.Errorf("API lists %+v", f)
		}
		return nil
	})

	writeFile(t, filepath.Join(dir, "old"), []byte("content"), 0o644, time.Unix(1000000000, 0))
	before := tm.file(t, "lib", "item", "old")
	cv := tm.item(t, "lib", "item").ContentVersion
	sessions, err := tm.Manager.ListUpdateSessions(t.Context(), tm.item(t, "lib", "item").ID)
	if err != nil {
		t.Fatal(err)
	}
	mustTool(t, "touch", "-d", "@1234567890.5", filepath.Join(dir, "old"))
	if st := lstat(t, filepath.Join(dir, "old")); st.Mtim != (syscall.Timespec{Sec: 1234567890, Nsec: 500000000}) {
		t.Fatalf("mtime after touch -d: %v", st.Mtim)
	}
	mustTool(t, "touch", filepath.Join(dir, "old"))
	if st := lstat(t, filepath.Join(dir, "old")); time.Since(time.Unix(st.Mtim.Unix())) > time.Minute {
		t.Fatalf("mtime after touch: %v", time.Unix(st.Mtim.Unix()))
	}
	wantContent(t, filepath.Join(dir, "old"), []byte("content"))
	after := tm.file(t, "lib", "item", "old")
	if after.Version != before.Version || after.ChecksumInfo.Checksum != before.ChecksumInfo.Checksum {
		t.Fatalf("touch made a version: %s -> %s", before.Version, after.Version)
	}
	if !after.Posix.Mtime.After(before.Posix.Mtime) {
		t.Fatalf("API mtime %v, was %v", after.Posix.Mtime, before.Posix.Mtime)
	}
	if got := tm.item(t, "lib", "item").ContentVersion; got != cv {
		t.Fatalf("touch changed the item's content version %s -> %s", cv, got)
	}
	if s, _ := tm.Manager.ListUpdateSessions(t.Context(), tm.item(t, "lib", "item").ID); len(s) != len(sessions) {
		t.Fatalf("touch made update sessions: %d -> %d", len(sessions), len(s))
	}
}

// TestTruncate: truncate -s shrinks and grows (zeros), each a version.
func TestTruncate(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	p := filepath.Join(dir, "f")
	data := randomBytes(10000)
	writeFile(t, p, data, 0o644, time.Time{})
	v0 := tm.file(t, "lib", "item", "f").Version

	mustTool(t, "truncate", "-s", "100", p)
	wantContent(t, p, data[:100])
	mustTool(t, "truncate", "-s", "5000", p)
	want := append(append([]byte{}, data[:100]...), make([]byte, 4900)...)
	wantContent(t, p, want)
	mustTool(t, "truncate", "-s", "0", p)
	eventually(t, "truncation to zero committed", func() error {
		if f := tm.file(t, "lib", "item", "f"); f.Size != 0 || f.Version == v0 {
			return fmt.Errorf("API: size %d version %s (was %s)", f.Size, f.Version, v0)
		}
		return nil
	})
	wantContent(t, p, nil)
}

// TestShellRedirections: echo x > f creates and replaces, >> appends.
func TestShellRedirections(t *testing.T) {
	tm := newMount(t)
	p := filepath.Join(tm.mkItem(t, "lib", "item"), "f")
	shell(t, "echo x > "+p)
	wantContent(t, p, []byte("x\n"))
	shell(t, "echo y >> "+p)
	wantContent(t, p, []byte("x\ny\n"))
	shell(t, "echo z > "+p)
	wantContent(t, p, []byte("z\n"))
	shell(t, "for i in 1 2 3; do echo $i >> "+p+"; done")
	wantContent(t, p, []byte("z\n1\n2\n3\n"))
	wantAPIFiles(t, tm, "lib", "item", map[string][]byte{"f": []byte("z\n1\n2\n3\n")})
}

// TestSedInPlace: sed -i writes sedXXXXXX and renames it over the file.
func TestSedInPlace(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	p := filepath.Join(dir, "conf")
	writeFile(t, p, []byte("alpha=1\nbeta=2\n"), 0o640, time.Time{})
	mustTool(t, "sed", "-i", "s/beta=2/beta=3/", p)
	wantContent(t, p, []byte("alpha=1\nbeta=3\n"))
	wantNames(t, dir, "conf")
	if st := lstat(t, p); st.Mode&0o777 != 0o640 {
		t.Errorf("mode after sed -i: %o", st.Mode&0o777)
	}
	wantAPIFiles(t, tm, "lib", "item", map[string][]byte{"conf": []byte("alpha=1\nbeta=3\n")})
}

// TestPythonAtomicReplace: tempfile.mkstemp in the item, write, fsync,
// os.replace over the target.
func TestPythonAtomicReplace(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	p := filepath.Join(dir, "data.json")
	writeFile(t, p, []byte(`{"v": 1}`), 0o644, time.Time{})
	script := `
import os, sys, tempfile
d = sys.argv[1]
fd, tmp = tempfile.mkstemp(dir=d)
with os.fdopen(fd, "w") as f:
    f.write('{"v": 2}')
    f.flush()
    os.fsync(f.fileno())
os.replace(tmp, os.path.join(d, "data.json"))
`
	mustTool(t, "python3", "-c", script, dir)
	wantContent(t, p, []byte(`{"v": 2}`))
	wantNames(t, dir, "data.json")
	wantAPIFiles(t, tm, "lib", "item", map[string][]byte{"data.json": []byte(`{"v": 2}`)})
}

// TestDdNotrunc: dd conv=notrunc seek= overwrites in the middle and
// extends past the end.
func TestDdNotrunc(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	p := filepath.Join(dir, "disk.img")
	data := randomBytes(64 << 10)
	writeFile(t, p, data, 0o644, time.Time{})
	patch := filepath.Join(t.TempDir(), "patch")
	writeFile(t, patch, bytes.Repeat([]byte{0xAB}, 4096), 0o644, time.Time{})

	mustTool(t, "dd", "if="+patch, "of="+p, "bs=4096", "seek=3", "conv=notrunc", "status=none")
	want := append([]byte{}, data...)
	copy(want[3*4096:], bytes.Repeat([]byte{0xAB}, 4096))
	wantContent(t, p, want)

	mustTool(t, "dd", "if="+patch, "of="+p, "bs=4096", "seek=17", "conv=notrunc", "status=none")
	// 64 KiB is 16 blocks: block 16 is a hole, block 17 the patch.
	want = append(append(want, make([]byte, 4096)...), bytes.Repeat([]byte{0xAB}, 4096)...)
	wantContent(t, p, want)
	wantAPIFiles(t, tm, "lib", "item", map[string][]byte{"disk.img": want})

	// dd conv=notrunc of nothing changes nothing: no new version.
	v := tm.file(t, "lib", "item", "disk.img").Version
	mustTool(t, "dd", "if=/dev/null", "of="+p, "conv=notrunc", "status=none")
	if got := tm.file(t, "lib", "item", "disk.img").Version; got != v {
		t.Fatalf("dd of nothing made version %s (was %s)", got, v)
	}
}

// TestEmptyFileSetattrRace: a new empty file commits at RELEASE, which
// the kernel sends after close(2) returned, while the next calls (rsync's
// utimensat and chmod by path) already look the file up by name. This
// deadlocked the mount (lock order) and lost the name (ENOENT) before.
func TestEmptyFileSetattrRace(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	mtime := time.Unix(1300000000, 5)
	for i := range 200 {
		p := filepath.Join(dir, fmt.Sprintf(".e%d.tmp", i))
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatalf("%d: chtimes right after close: %v", i, err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatalf("%d: chmod right after close: %v", i, err)
		}
		if err := os.Rename(p, filepath.Join(dir, fmt.Sprintf("e%d", i))); err != nil {
			t.Fatalf("%d: rename right after close: %v", i, err)
		}
	}
	eventually(t, "200 empty files committed", func() error {
		fs := tm.files(t, "lib", "item")
		if len(fs) != 200 {
			return fmt.Errorf("API lists %d files", len(fs))
		}
		for name, f := range fs {
			if f.Size != 0 || !f.Posix.Mtime.Equal(mtime) || f.Posix.Mode != 0o644 {
				return fmt.Errorf("%s: %+v", name, f)
			}
		}
		return nil
	})
}

// TestMmapWrite: a shared writable mapping of a file in an item (write
// handles bypass the page cache, so this needs DIRECT_IO_ALLOW_MMAP)
// writes through, and closing commits it.
func TestMmapWrite(t *testing.T) {
	tm := newMount(t)
	p := filepath.Join(tm.mkItem(t, "lib", "item"), "m")
	writeFile(t, p, []byte("hello world"), 0o644, time.Time{})
	script := `
import mmap, sys
with open(sys.argv[1], "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    m[0:5] = b"HELLO"
    m.flush()
    m.close()
`
	mustTool(t, "python3", "-c", script, p)
	wantContent(t, p, []byte("HELLO world"))
	wantAPIFiles(t, tm, "lib", "item", map[string][]byte{"m": []byte("HELLO world")})
}

// TestParallelWritesOneItem: several cp into one item at once, then
// rsync of many small files: each file's commit carries the others to a
// successor session while they are still being written.
func TestParallelWritesOneItem(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	src := t.TempDir()
	want := map[string][]byte{}
	for i := range 5 {
		name := fmt.Sprintf("big%d", i)
		want[name] = randomBytes(2<<20 + i*1000)
		writeFile(t, filepath.Join(src, name), want[name], 0o644, time.Time{})
	}
	var cmds []*exec.Cmd
	for name := range want {
		c := exec.Command("cp", filepath.Join(src, name), dir)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("cp: %v", err)
		}
	}
	for name, data := range want {
		wantContent(t, filepath.Join(dir, name), data)
	}
	wantAPIFiles(t, tm, "lib", "item", want)

	small := t.TempDir()
	for i := range 40 {
		name := fmt.Sprintf("s%02d", i)
		want[name] = randomBytes(i * 37)
		writeFile(t, filepath.Join(small, name), want[name], 0o644, time.Unix(1600000000+int64(i), 0))
	}
	mustTool(t, "rsync", "-a", small+"/", dir+"/")
	wantAPIFiles(t, tm, "lib", "item", want)
	sessions, err := tm.Manager.ListUpdateSessions(t.Context(), tm.item(t, "lib", "item").ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if s.State != sessionmgr.StateDone {
			t.Errorf("session %s is %s", s.ID, s.State)
		}
	}
}
