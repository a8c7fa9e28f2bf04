package mount

// Bad input gets a clear errno, the mount carries on (guarantee 4).

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"clfs/sessionmgr"
)

// wantErrno fails unless err is errno.
func wantErrno(t *testing.T, what string, err error, errno syscall.Errno) {
	t.Helper()
	if !errors.Is(err, errno) {
		t.Errorf("%s: %v, want %v", what, err, errno)
	}
}

// stillWorks checks the mount answers after the bad input.
func stillWorks(t *testing.T, tm *testMount) {
	t.Helper()
	p := filepath.Join(tm.mkItem(t, "alive", "item"), "f")
	writeFile(t, p, []byte("ok"), 0o644, time.Time{})
	wantContent(t, p, []byte("ok"))
}

// TestFilesOnlyInItems: a regular file at / or /LIB is EPERM, by syscall
// and by tool.
func TestFilesOnlyInItems(t *testing.T) {
	tm := newMount(t)
	tm.mkItem(t, "lib", "item")
	for _, p := range []string{tm.path("f"), tm.path("lib", "f")} {
		_, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		wantErrno(t, "create "+p, err, syscall.EPERM)
		if r := tool(t, "touch", p); r.code == 0 || !strings.Contains(r.stderr, "Operation not permitted") {
			t.Errorf("touch %s: %v", p, r)
		}
		if r := tool(t, "cp", "/etc/hostname", p); r.code == 0 {
			t.Errorf("cp to %s: %v", p, r)
		}
	}
	wantNames(t, tm.path(), "lib")
	wantNames(t, tm.path("lib"), "item")
	stillWorks(t, tm)
}

// TestLinksAndSpecialFilesArePerm: ln -s, ln, mkfifo and mknod are EPERM
// at every depth.
func TestLinksAndSpecialFilesArePerm(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	target := filepath.Join(dir, "target")
	writeFile(t, target, []byte("t"), 0o644, time.Time{})
	for _, d := range []string{tm.path(), tm.path("lib"), dir} {
		wantErrno(t, "symlink in "+d, syscall.Symlink("target", filepath.Join(d, "sl")), syscall.EPERM)
		wantErrno(t, "link in "+d, syscall.Link(target, filepath.Join(d, "hl")), syscall.EPERM)
		wantErrno(t, "mkfifo in "+d, syscall.Mkfifo(filepath.Join(d, "fifo"), 0o644), syscall.EPERM)
		wantErrno(t, "mknod in "+d, syscall.Mknod(filepath.Join(d, "dev"), syscall.S_IFCHR|0o644, 0x0103), syscall.EPERM)
	}
	for _, args := range [][]string{
		{"ln", "-s", "target", filepath.Join(dir, "sl")},
		{"ln", target, filepath.Join(dir, "hl")},
		{"mkfifo", filepath.Join(dir, "fifo")},
	} {
		if r := tool(t, args[0], args[1:]...); r.code != 1 || !strings.Contains(r.stderr, "Operation not permitted") {
			t.Errorf("%q: %v", args, r)
		}
	}
	wantNames(t, dir, "target")
	wantAPIFiles(t, tm, "lib", "item", map[string][]byte{"target": []byte("t")})
	stillWorks(t, tm)
}

// TestNameTooLong: 256-byte names are ENAMETOOLONG for libraries, items,
// files and rename targets; 255 bytes work. Item names are limited to 80
// characters by the API: 81 is ENAMETOOLONG too.
func TestNameTooLong(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	long, ok := strings.Repeat("n", 256), strings.Repeat("o", 255)
	wantErrno(t, "mkdir library", syscall.Mkdir(tm.path(long), 0o755), syscall.ENAMETOOLONG)
	wantErrno(t, "mkdir item", syscall.Mkdir(tm.path("lib", long), 0o755), syscall.ENAMETOOLONG)
	wantErrno(t, "mkdir item of 81 characters", syscall.Mkdir(tm.path("lib", strings.Repeat("é", 81)), 0o755), syscall.ENAMETOOLONG)
	if err := os.Mkdir(tm.path("lib", strings.Repeat("é", 80)), 0o755); err != nil {
		t.Fatalf("mkdir of an 80-character item name: %v", err)
	}
	if r := tool(t, "mkdir", tm.path("lib", strings.Repeat("i", 81))); r.code == 0 || !strings.Contains(r.stderr, "File name too long") {
		t.Errorf("mkdir of an 81-character item: %v", r)
	}
	if err := os.Mkdir(tm.path(ok), 0o755); err != nil {
		t.Fatalf("mkdir of a 255-byte library name: %v", err)
	}
	_, err := os.OpenFile(filepath.Join(dir, long), os.O_WRONLY|os.O_CREATE, 0o644)
	wantErrno(t, "create file", err, syscall.ENAMETOOLONG)
	writeFile(t, filepath.Join(dir, "f"), []byte("f"), 0o644, time.Time{})
	wantErrno(t, "rename file", syscall.Rename(filepath.Join(dir, "f"), filepath.Join(dir, long)), syscall.ENAMETOOLONG)
	wantErrno(t, "rename item", syscall.Rename(dir, tm.path("lib", long)), syscall.ENAMETOOLONG)

	writeFile(t, filepath.Join(dir, ok), []byte("255"), 0o644, time.Time{})
	wantContent(t, filepath.Join(dir, ok), []byte("255"))
	wantNames(t, dir, "f", ok)
	stillWorks(t, tm)
}

// TestAPISessionMakesWritesBusy: while an API client holds the item's
// update session, changing a file through the mount is EBUSY (at the
// write, at an open with O_TRUNC, at create), reading is fine, and
// nothing changes; once the session is cancelled, writes work again.
func TestAPISessionMakesWritesBusy(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	p := filepath.Join(dir, "f")
	writeFile(t, p, []byte("committed"), 0o644, time.Time{})
	it := tm.item(t, "lib", "item")
	sid, err := tm.Manager.CreateUpdateSession(t.Context(), sessionmgr.UpdateSessionCreateSpec{LibraryItemID: it.ID}, "")
	if err != nil {
		t.Fatal(err)
	}

	f, err := os.OpenFile(p, os.O_WRONLY, 0) // opening changes nothing: fine
	if err != nil {
		t.Fatalf("open for write without O_TRUNC: %v", err)
	}
	_, err = f.Write([]byte("x"))
	wantErrno(t, "write", err, syscall.EBUSY)
	if err := f.Close(); err != nil {
		t.Errorf("close after a refused write: %v", err)
	}
	_, err = os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	wantErrno(t, "open with O_TRUNC", err, syscall.EBUSY)
	_, err = os.OpenFile(filepath.Join(dir, "new"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	wantErrno(t, "create", err, syscall.EBUSY)
	wantErrno(t, "truncate", os.Truncate(p, 1), syscall.EBUSY)
	wantErrno(t, "unlink", syscall.Unlink(p), syscall.EBUSY)
	if r := tool(t, "cp", "/etc/hostname", p); r.code == 0 || !strings.Contains(r.stderr, "busy") {
		t.Errorf("cp onto the file: %v", r)
	}
	wantContent(t, p, []byte("committed"))
	wantNames(t, dir, "f")
	if s, err := tm.Manager.GetUpdateSession(t.Context(), sid); err != nil || s.State != sessionmgr.StateActive {
		t.Fatalf("the API client's session: %+v, %v", s, err)
	}

	if err := tm.Manager.CancelUpdateSession(t.Context(), sid); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, []byte("mine again"), 0o644, time.Time{})
	wantContent(t, p, []byte("mine again"))
	wantAPIFiles(t, tm, "lib", "item", map[string][]byte{"f": []byte("mine again")})
}

// TestRenameFlags: RENAME_EXCHANGE is EINVAL, RENAME_NOREPLACE over an
// existing name is EEXIST, and neither changes anything; NOREPLACE onto
// a free name renames.
func TestRenameFlags(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeFile(t, a, []byte("A"), 0o644, time.Time{})
	writeFile(t, b, []byte("B"), 0o644, time.Time{})

	wantErrno(t, "RENAME_EXCHANGE", unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE), syscall.EINVAL)
	wantErrno(t, "RENAME_NOREPLACE over b", unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_NOREPLACE), syscall.EEXIST)
	wantErrno(t, "RENAME_WHITEOUT", unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_WHITEOUT), syscall.EINVAL)
	wantContent(t, a, []byte("A"))
	wantContent(t, b, []byte("B"))

	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, filepath.Join(dir, "c"), unix.RENAME_NOREPLACE); err != nil {
		t.Fatalf("RENAME_NOREPLACE onto a free name: %v", err)
	}
	wantNames(t, dir, "b", "c")
	wantAPIFiles(t, tm, "lib", "item", map[string][]byte{"b": []byte("B"), "c": []byte("A")})

	// Items and libraries too.
	tm.mkItem(t, "lib", "other")
	wantErrno(t, "RENAME_EXCHANGE of items", unix.Renameat2(unix.AT_FDCWD, dir, unix.AT_FDCWD, tm.path("lib", "other"), unix.RENAME_EXCHANGE), syscall.EINVAL)
	wantErrno(t, "RENAME_NOREPLACE of items", unix.Renameat2(unix.AT_FDCWD, tm.path("lib", "other"), unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE), syscall.EEXIST)
	wantNames(t, tm.path("lib"), "item", "other")
	stillWorks(t, tm)
}
