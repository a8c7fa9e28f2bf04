package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestFstabCallForm(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"clfs", "/var/lib/clfs", "/mnt/clfs", "-o", "rw,allow_other"}, true},
		{[]string{"clfs", "/var/lib/clfs", "/mnt/clfs"}, true},
		{[]string{"clfs", "item", "ls", "lib"}, false},
		{[]string{"clfs", "mount", "/mnt/clfs"}, false},
		{[]string{"clfs", "relative", "/mnt/clfs", "-o", "ro"}, false},
	} {
		if _, _, _, ok := fstabCall(tc.args); ok != tc.ok {
			t.Errorf("fstabCall(%q) = %v, want %v", tc.args, ok, tc.ok)
		}
	}
	flags, err := fstabFlags("rw,ro,nosuid,allow_other,session_timeout=2m,_netdev")
	if err != nil || len(flags) != 4 || flags[0] != "--read-only" || flags[1] != "--allow-other" || flags[3] != "2m" {
		t.Errorf("fstabFlags = %q, %v", flags, err)
	}
	if flags, err := fstabFlags("defaults,verify_reads"); err != nil || len(flags) != 1 || flags[0] != "--verify-reads" {
		t.Errorf("fstabFlags(verify_reads) = %q, %v", flags, err)
	}
	if _, err := fstabFlags("session_timeout=soon"); err == nil {
		t.Error("a bad session_timeout was accepted")
	}
}

// TestFstabMount mounts the way /etc/fstab does: mount(8) → mount.fuse3 →
// "clfs HOME MOUNTPOINT -o OPTIONS", which must detach and return once
// mounted.
func TestFstabMount(t *testing.T) {
	if _, err := exec.LookPath("mount.fuse3"); err != nil {
		t.Fatalf("mount.fuse3 (package fuse3) is needed to test fstab mounting: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "clfs")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	home, mnt := filepath.Join(dir, "home"), filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "fuse", "-o", "ro", bin+"#"+home, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	defer exec.Command("umount", "-l", mnt).Run()
	err := os.Mkdir(filepath.Join(mnt, "lib"), 0o755)
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("mkdir on an fstab mount with -o ro: %v, want EROFS", err)
	}
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v\n%s", err, out)
	}
	// The detached daemon ends with its mount and removes its socket.
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(home, "clfs.sock")); errors.Is(err, os.ErrNotExist) {
			break
		}
		if i == 100 {
			t.Fatal("the daemon did not exit after umount")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
