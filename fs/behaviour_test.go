package fs

import (
	"bytes"
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"
)

// The behaviour suite: what a user of clfs observes, written once against
// a small driver and run twice (rclone's vfstest): "direct" drives the
// Manager interface as a front end without FUSE would, "mount" makes the
// system calls of a process on a real mount of this package's filesystem.
// A behaviour that differs between the two is a bug in fs's translation;
// one that fails in both is a bug in sessionmgr's rules.
//
// Paths are slash-separated and relative to the root: "LIB", "LIB/ITEM",
// "LIB/ITEM/FILE". Errors are errnos (syscall.Errno), as a process sees
// them; the direct driver maps sessionmgr's errors with fs's own mapping.

// driver is one way of using clfs.
type driver interface {
	Mkdir(path string, mode uint32) error
	Rmdir(path string) error
	// Create opens a file for writing as open(O_WRONLY|O_CREAT|O_TRUNC)
	// does; its Close is close(2), which commits what it wrote.
	Create(path string, mode uint32) (fileWriter, error)
	ReadFile(path string) ([]byte, error)
	// ReadDir lists a directory's names in the order it returns them.
	ReadDir(path string) ([]string, error)
	Stat(path string) (*info, error)
	Rename(from, to string, noReplace bool) error
	Remove(path string) error
	Chmod(path string, mode uint32) error
	Chtimes(path string, mtime time.Time) error
	Truncate(path string, size int64) error
}

type fileWriter interface {
	Write(p []byte) (int, error)
	Close() error
}

// info is what the suite compares of a stat(2).
type info struct {
	Dir   bool
	Mode  uint32 // permission and set-ID bits
	Size  int64  // files only
	Mtime time.Time
}

// behaviours run each on an empty filesystem.
var behaviours = []struct {
	name string
	run  func(t *testing.T, d driver)
}{
	{"directories", testDirectories},
	{"write, close, read back", testWriteCloseRead},
	{"listing order", testListingOrder},
	{"rename file", testRenameFile},
	{"rename item", testRenameItem},
	{"rename library", testRenameLibrary},
	{"rmdir and unlink", testRmdirUnlink},
	{"mode and mtime", testModeMtime},
	{"truncate", testTruncate},
}

// drivers make a driver over a session manager.
var drivers = []struct {
	name string
	open func(t *testing.T, m Manager) driver
}{
	{"direct", newDirectDriver},
	{"mount", newMountDriver},
}

func TestBehaviour(t *testing.T) {
	for _, drv := range drivers {
		t.Run(drv.name, func(t *testing.T) {
			for _, b := range behaviours {
				t.Run(b.name, func(t *testing.T) { b.run(t, drv.open(t, openManager(t, t.TempDir(), false))) })
			}
		})
	}
}

// TestBehaviourReadOnly: over a session manager opened read-only, every
// change is EROFS and changes nothing; reading works. The mount driver
// does not mount "ro" (mount.Start does), so what answers there is the
// manager's refusal through fs, not the kernel.
func TestBehaviourReadOnly(t *testing.T) {
	for _, drv := range drivers {
		t.Run(drv.name, func(t *testing.T) {
			home := t.TempDir()
			t.Run("populate", func(t *testing.T) {
				w := newDirectDriver(t, openManager(t, home, false))
				must(t, "mkdir", w.Mkdir("lib", 0o755))
				must(t, "mkdir", w.Mkdir("lib/item", 0o755))
				must(t, "mkdir", w.Mkdir("lib/empty", 0o755))
				must(t, "mkdir", w.Mkdir("empty", 0o755))
				writeFile(t, w, "lib/item/f", "committed", 0o644)
			}) // its manager closed with it
			testReadOnly(t, drv.open(t, openManager(t, home, true)))
		})
	}
}

func testReadOnly(t *testing.T, d driver) {
	create := func(path string) error {
		w, err := d.Create(path, 0o644)
		if err == nil {
			w.Close()
			t.Errorf("create %s succeeded on a read-only manager", path)
		}
		return err
	}
	for _, c := range []struct {
		what string
		err  error
	}{
		{"mkdir of a library", d.Mkdir("new", 0o755)},
		{"mkdir of an item", d.Mkdir("lib/new", 0o755)},
		{"rmdir of an empty library", d.Rmdir("empty")},
		{"rmdir of an empty item", d.Rmdir("lib/empty")},
		{"create of a new file", create("lib/item/new")},
		{"open(O_TRUNC) of a file", create("lib/item/f")},
		{"rename of a file", d.Rename("lib/item/f", "lib/item/g", false)},
		{"rename of an item", d.Rename("lib/item", "lib/other", false)},
		{"rename of an item over an empty one", d.Rename("lib/item", "lib/empty", false)},
		{"rename of a library", d.Rename("lib", "other", false)},
		{"unlink", d.Remove("lib/item/f")},
		{"chmod of a file", d.Chmod("lib/item/f", 0o600)},
		{"chmod of an item", d.Chmod("lib/item", 0o700)},
		{"chmod of a library", d.Chmod("lib", 0o700)},
		{"utimes of a file", d.Chtimes("lib/item/f", time.Unix(1, 0))},
		{"truncate", d.Truncate("lib/item/f", 1)},
	} {
		wantErr(t, c.what, c.err, syscall.EROFS)
	}
	wantNames(t, d, "", "empty", "lib")
	wantNames(t, d, "lib", "empty", "item")
	wantNames(t, d, "lib/item", "f")
	wantContent(t, d, "lib/item/f", "committed")
	if st := stat(t, d, "lib/item/f"); st.Mode != 0o644 || st.Size != 9 {
		t.Errorf("f: %+v, want mode 644, 9 bytes", st)
	}
}

// Helpers: each fails the behaviour at the caller's line.

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	var got syscall.Errno
	if !errors.As(err, &got) || got != want {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

func writeFile(t *testing.T, d driver, path, content string, mode uint32) {
	t.Helper()
	w, err := d.Create(path, mode)
	must(t, "create "+path, err)
	if _, err := w.Write([]byte(content)); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	must(t, "close "+path, w.Close())
}

func wantContent(t *testing.T, d driver, path, want string) {
	t.Helper()
	got, err := d.ReadFile(path)
	must(t, "read "+path, err)
	if !bytes.Equal(got, []byte(want)) {
		t.Fatalf("%s holds %q, want %q", path, got, want)
	}
}

func wantNames(t *testing.T, d driver, dir string, want ...string) {
	t.Helper()
	got, err := d.ReadDir(dir)
	must(t, "readdir "+dir, err)
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("%q lists %q, want %q", dir, got, want)
	}
}

func wantGone(t *testing.T, d driver, path string) {
	t.Helper()
	_, err := d.Stat(path)
	wantErr(t, "stat "+path, err, syscall.ENOENT)
}

func stat(t *testing.T, d driver, path string) *info {
	t.Helper()
	st, err := d.Stat(path)
	must(t, "stat "+path, err)
	return st
}

func testDirectories(t *testing.T, d driver) {
	wantNames(t, d, "")
	must(t, "mkdir lib", d.Mkdir("lib", 0o750))
	must(t, "mkdir lib/item", d.Mkdir("lib/item", 0o700))
	if st := stat(t, d, "lib"); !st.Dir || st.Mode != 0o750 {
		t.Errorf("lib: %+v, want a directory of mode 750", st)
	}
	if st := stat(t, d, "lib/item"); !st.Dir || st.Mode != 0o700 {
		t.Errorf("lib/item: %+v, want a directory of mode 700", st)
	}
	wantNames(t, d, "", "lib")
	wantNames(t, d, "lib", "item")
	wantNames(t, d, "lib/item")
	wantErr(t, "mkdir of an existing library", d.Mkdir("lib", 0o755), syscall.EEXIST)
	wantErr(t, "mkdir of an existing item", d.Mkdir("lib/item", 0o755), syscall.EEXIST)
	wantErr(t, "mkdir in a missing library", d.Mkdir("nolib/item", 0o755), syscall.ENOENT)
}

func testWriteCloseRead(t *testing.T, d driver) {
	must(t, "mkdir", d.Mkdir("lib", 0o755))
	must(t, "mkdir", d.Mkdir("lib/item", 0o755))
	w, err := d.Create("lib/item/f", 0o640)
	must(t, "create", err)
	if _, err := w.Write([]byte("hello, ")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	// Until its close, a new name reads as empty to everybody else.
	wantNames(t, d, "lib/item", "f")
	wantContent(t, d, "lib/item/f", "")
	must(t, "close", w.Close())
	wantContent(t, d, "lib/item/f", "hello, world")
	if st := stat(t, d, "lib/item/f"); st.Dir || st.Size != 12 || st.Mode != 0o640 {
		t.Errorf("f: %+v, want a file of 12 bytes, mode 640", st)
	}

	// A new version: the old one is what others read until the close.
	w, err = d.Create("lib/item/f", 0o600)
	must(t, "create over", err)
	if _, err := w.Write([]byte("v2")); err != nil {
		t.Fatal(err)
	}
	wantContent(t, d, "lib/item/f", "hello, world")
	must(t, "close", w.Close())
	wantContent(t, d, "lib/item/f", "v2")
	if st := stat(t, d, "lib/item/f"); st.Size != 2 || st.Mode != 0o640 {
		t.Errorf("f after a new version: %+v, want 2 bytes, its mode kept (640)", st)
	}
	_, err = d.ReadFile("lib/item/missing")
	wantErr(t, "read of a missing file", err, syscall.ENOENT)
}

// Libraries and items, whose names are unique case-insensitively, list
// in case-insensitive order; files in byte order.
func testListingOrder(t *testing.T, d driver) {
	for _, lib := range []string{"b", "a", "C"} {
		must(t, "mkdir "+lib, d.Mkdir(lib, 0o755))
	}
	for _, item := range []string{"z", "x", "Y"} {
		must(t, "mkdir "+item, d.Mkdir("a/"+item, 0o755))
	}
	for _, f := range []string{"b", "a", "B", "c.txt", "c"} {
		writeFile(t, d, "a/x/"+f, f, 0o644)
	}
	wantNames(t, d, "", "a", "b", "C")
	wantNames(t, d, "a", "x", "Y", "z")
	wantNames(t, d, "a/x", "B", "a", "b", "c", "c.txt")
	wantContent(t, d, "a/x/B", "B")
	wantContent(t, d, "a/x/b", "b")
}

func testRenameFile(t *testing.T, d driver) {
	must(t, "mkdir", d.Mkdir("lib", 0o755))
	must(t, "mkdir", d.Mkdir("lib/item", 0o755))
	writeFile(t, d, "lib/item/a", "A", 0o644)
	writeFile(t, d, "lib/item/b", "B", 0o644)

	must(t, "rename onto a free name", d.Rename("lib/item/a", "lib/item/c", false))
	wantNames(t, d, "lib/item", "b", "c")
	wantContent(t, d, "lib/item/c", "A")
	wantGone(t, d, "lib/item/a")

	wantErr(t, "RENAME_NOREPLACE over b", d.Rename("lib/item/c", "lib/item/b", true), syscall.EEXIST)
	wantContent(t, d, "lib/item/b", "B")
	wantContent(t, d, "lib/item/c", "A")

	must(t, "rename over b", d.Rename("lib/item/c", "lib/item/b", false))
	wantNames(t, d, "lib/item", "b")
	wantContent(t, d, "lib/item/b", "A")

	must(t, "rename onto itself", d.Rename("lib/item/b", "lib/item/b", false))
	wantContent(t, d, "lib/item/b", "A")
	wantErr(t, "rename of a missing file", d.Rename("lib/item/nope", "lib/item/x", false), syscall.ENOENT)
}

func testRenameItem(t *testing.T, d driver) {
	must(t, "mkdir", d.Mkdir("lib", 0o755))
	for _, item := range []string{"a", "b", "empty"} {
		must(t, "mkdir "+item, d.Mkdir("lib/"+item, 0o755))
	}
	writeFile(t, d, "lib/a/f", "in a", 0o644)
	writeFile(t, d, "lib/b/f", "in b", 0o644)

	must(t, "rename onto a free name", d.Rename("lib/a", "lib/c", false))
	wantNames(t, d, "lib", "b", "c", "empty")
	wantContent(t, d, "lib/c/f", "in a")

	wantErr(t, "RENAME_NOREPLACE over an item", d.Rename("lib/c", "lib/empty", true), syscall.EEXIST)
	wantErr(t, "rename over an item with files", d.Rename("lib/c", "lib/b", false), syscall.ENOTEMPTY)
	wantNames(t, d, "lib", "b", "c", "empty")
	wantContent(t, d, "lib/b/f", "in b")
	wantContent(t, d, "lib/c/f", "in a")

	must(t, "rename over an empty item", d.Rename("lib/c", "lib/empty", false))
	wantNames(t, d, "lib", "b", "empty")
	wantContent(t, d, "lib/empty/f", "in a")
	wantGone(t, d, "lib/c")

	must(t, "rename onto itself", d.Rename("lib/b", "lib/b", false))
	wantErr(t, "rename of a missing item", d.Rename("lib/nope", "lib/x", false), syscall.ENOENT)
}

func testRenameLibrary(t *testing.T, d driver) {
	for _, lib := range []string{"a", "b", "empty"} {
		must(t, "mkdir "+lib, d.Mkdir(lib, 0o755))
	}
	must(t, "mkdir", d.Mkdir("a/item", 0o755))
	must(t, "mkdir", d.Mkdir("b/item", 0o755))
	writeFile(t, d, "a/item/f", "in a", 0o644)

	must(t, "rename onto a free name", d.Rename("a", "c", false))
	wantNames(t, d, "", "b", "c", "empty")
	wantContent(t, d, "c/item/f", "in a")

	wantErr(t, "RENAME_NOREPLACE over a library", d.Rename("c", "empty", true), syscall.EEXIST)
	wantErr(t, "rename over a library with items", d.Rename("c", "b", false), syscall.ENOTEMPTY)
	wantNames(t, d, "", "b", "c", "empty")
	wantNames(t, d, "b", "item")

	must(t, "rename over an empty library", d.Rename("c", "empty", false))
	wantNames(t, d, "", "b", "empty")
	wantContent(t, d, "empty/item/f", "in a")
	wantGone(t, d, "c")

	must(t, "rename onto itself", d.Rename("b", "b", false))
	wantErr(t, "rename of a missing library", d.Rename("nope", "x", false), syscall.ENOENT)
}

func testRmdirUnlink(t *testing.T, d driver) {
	must(t, "mkdir", d.Mkdir("lib", 0o755))
	must(t, "mkdir", d.Mkdir("lib/item", 0o755))
	writeFile(t, d, "lib/item/f", "x", 0o644)
	writeFile(t, d, "lib/item/g", "y", 0o644)

	wantErr(t, "rmdir of an item with files", d.Rmdir("lib/item"), syscall.ENOTEMPTY)
	wantErr(t, "rmdir of a library with items", d.Rmdir("lib"), syscall.ENOTEMPTY)
	wantContent(t, d, "lib/item/f", "x")

	must(t, "unlink f", d.Remove("lib/item/f"))
	wantGone(t, d, "lib/item/f")
	wantNames(t, d, "lib/item", "g")
	wantErr(t, "unlink of a missing file", d.Remove("lib/item/f"), syscall.ENOENT)
	wantErr(t, "rmdir of an item with a file", d.Rmdir("lib/item"), syscall.ENOTEMPTY)
	must(t, "unlink g", d.Remove("lib/item/g"))

	must(t, "rmdir of the emptied item", d.Rmdir("lib/item"))
	wantGone(t, d, "lib/item")
	must(t, "rmdir of the emptied library", d.Rmdir("lib"))
	wantGone(t, d, "lib")
	wantNames(t, d, "")
	wantErr(t, "rmdir of a missing library", d.Rmdir("lib"), syscall.ENOENT)
}

func testModeMtime(t *testing.T, d driver) {
	must(t, "mkdir", d.Mkdir("lib", 0o755))
	must(t, "mkdir", d.Mkdir("lib/item", 0o755))
	writeFile(t, d, "lib/item/f", "data", 0o644)
	// Nanoseconds, and mode 0 is a mode.
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	for _, p := range []string{"lib", "lib/item", "lib/item/f"} {
		must(t, "chmod "+p, d.Chmod(p, 0o600))
		must(t, "chtimes "+p, d.Chtimes(p, mtime))
		st := stat(t, d, p)
		if st.Mode != 0o600 || !st.Mtime.Equal(mtime) {
			t.Errorf("%s: mode %o, mtime %v; want 600, %v", p, st.Mode, st.Mtime, mtime)
		}
	}
	must(t, "chmod 0", d.Chmod("lib/item/f", 0))
	if st := stat(t, d, "lib/item/f"); st.Mode != 0 || st.Size != 4 {
		t.Errorf("f after chmod 0: %+v, want mode 0, 4 bytes", st)
	}
	wantErr(t, "chmod of a missing file", d.Chmod("lib/item/nope", 0o644), syscall.ENOENT)
}

func testTruncate(t *testing.T, d driver) {
	must(t, "mkdir", d.Mkdir("lib", 0o755))
	must(t, "mkdir", d.Mkdir("lib/item", 0o755))
	writeFile(t, d, "lib/item/f", "0123456789", 0o644)

	must(t, "truncate to 4", d.Truncate("lib/item/f", 4))
	wantContent(t, d, "lib/item/f", "0123")
	must(t, "truncate to 6", d.Truncate("lib/item/f", 6))
	wantContent(t, d, "lib/item/f", "0123\x00\x00")
	if st := stat(t, d, "lib/item/f"); st.Size != 6 {
		t.Errorf("size after truncate: %d, want 6", st.Size)
	}
	must(t, "truncate to 0", d.Truncate("lib/item/f", 0))
	wantContent(t, d, "lib/item/f", "")
	wantErr(t, "truncate of a missing file", d.Truncate("lib/item/nope", 1), syscall.ENOENT)
}
