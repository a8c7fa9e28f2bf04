package mount

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"clfs/sessionmgr"
)

// smallDisk mounts a tmpfs of size bytes for a library's storage backing.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs (needs root): %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// Guarantee 4 of ARCHITECTURE.md for a full disk: the close (or the write)
// fails with ENOSPC, the previous version survives, nothing is left staged,
// and the library takes writes again once there is room.
func TestFullStorageFailsCloseAndKeepsPreviousVersion(t *testing.T) {
	mnt, mt := mounted(t)
	ctx := context.Background()
	disk := smallDisk(t, "8m")
	if _, err := mt.Manager.CreateLibrary(ctx, sessionmgr.LibraryCreateSpec{Name: "small", StorageDir: disk}, ""); err != nil {
		t.Fatal(err)
	}
	item := filepath.Join(mnt, "small", "iso")
	if err := os.Mkdir(item, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(item, "disk.img")
	v1 := make([]byte, 1<<20)
	rand.Read(v1)
	if err := os.WriteFile(path, v1, 0o644); err != nil {
		t.Fatal(err)
	}

	big := make([]byte, 16<<20)
	rand.Read(big)
	werr, cerr := writeAndClose(path, big)
	if werr != nil && !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("write of 16 MiB to an 8 MiB backing: %v, want ENOSPC or nil", werr)
	}
	if !errors.Is(cerr, syscall.ENOSPC) {
		t.Fatalf("close after writing 16 MiB to an 8 MiB backing: %v, want ENOSPC", cerr)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("previous version after ENOSPC: %v, %d bytes", err, len(got))
	}
	staged, _ := filepath.Glob(filepath.Join(disk, "staging", "*", "*"))
	if len(staged) != 0 {
		t.Errorf("staging left behind after the failed commit: %v", staged)
	}
	small := []byte("fits now\n")
	if err := os.WriteFile(filepath.Join(item, "note.txt"), small, 0o644); err != nil {
		t.Fatalf("a small write after the failure: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(item, "note.txt")); !bytes.Equal(got, small) {
		t.Fatalf("small file reads %q", got)
	}
}

// writeAndClose writes data over path, going on after a failed write as a
// careless program would, and returns the errors of write and close.
func writeAndClose(path string, data []byte) (werr, cerr error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err, err
	}
	_, werr = f.Write(data)
	return werr, f.Close()
}
