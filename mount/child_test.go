package mount

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A writer that starts a program mid-write hands the child a copy of its
// descriptor, which the child closes at exec: that close must not commit
// the half-written file. The writer's own close does.
func TestChildCloseDoesNotCommit(t *testing.T) {
	mnt, _ := mounted(t)
	item := filepath.Join(mnt, "lib", "item")
	if err := os.MkdirAll(item, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(item, "f.txt")
	if err := os.WriteFile(path, []byte("old version\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("true").CombinedOutput(); err != nil {
		t.Fatalf("true: %v %s", err, out)
	}
	// cat opens its own descriptor: it reads the committed version.
	if out, err := exec.Command("cat", path).Output(); err != nil || string(out) != "old version\n" {
		t.Fatalf("after a child exited mid-write, cat reads %q (%v), want the old version", out, err)
	}
	if _, err := f.Write([]byte(" and the rest\n")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, []byte("half and the rest\n")) {
		t.Fatalf("after the writer's close: %q", got)
	}
}
