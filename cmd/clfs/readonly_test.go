package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"clfs/mount"
)

// TestReadOnlyMountCommands: against a --read-only mount, the commands
// that change the catalog fail with a message that says why; the ones
// that read work.
func TestReadOnlyMountCommands(t *testing.T) {
	e := newCLI(t)
	src := filepath.Join(t.TempDir(), "f.txt")
	if err := os.WriteFile(src, []byte("content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.must("library", "create", "lib")
	e.must("item", "import", "lib/item", src)
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	mt, err := mount.Start(mount.Options{Mountpoint: mnt, Home: e.home, ReadOnly: true, Logger: slog.New(slog.NewTextHandler(logWriter{t}, nil))})
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
	for _, args := range [][]string{
		{"library", "create", "other"},
		{"library", "rm", "lib"},
		{"item", "create", "lib/new"},
		{"item", "rm", "lib/item"},
		{"item", "import", "lib/item", src},
	} {
		out, err := e.run(args...)
		if err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("clfs %s on a read-only mount: %v (%q), want a read-only error", strings.Join(args, " "), err, out)
		}
	}
	if out := e.must("file", "ls", "lib/item"); !strings.Contains(out, "f.txt") {
		t.Errorf("file ls: %q", out)
	}
	dst := filepath.Join(t.TempDir(), "export")
	e.must("item", "export", "lib/item", dst)
	if b, err := os.ReadFile(filepath.Join(dst, "f.txt")); err != nil || string(b) != "content\n" {
		t.Errorf("export from a read-only mount: %q %v", b, err)
	}
	e.must("fsck")
}
