package mount

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A rewrite with O_TRUNC must not show other descriptors an empty or cut
// file before its commit: they read the committed version, whole.
func TestTruncatingRewriteHidesFromReaders(t *testing.T) {
	mnt, _ := mounted(t)
	item := filepath.Join(mnt, "lib", "item")
	if err := os.MkdirAll(item, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(item, "f.bin")
	v1 := bytes.Repeat([]byte("one."), 75000)
	if err := os.WriteFile(path, v1, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("after open(O_TRUNC), before any write: read %d bytes, want the committed %d: %v", len(got), len(v1), err)
	}
	v2 := bytes.Repeat([]byte("two."), 37500)
	if _, err := w.Write(v2); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("mid-rewrite: read %d bytes, want the committed %d: %v", len(got), len(v1), err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("after close: read %d bytes, want %d: %v", len(got), len(v2), err)
	}
}

// A reader pinned to an old version must not shorten or taint what a new
// reader of the newer version sees.
func TestOldReaderDoesNotCutNewReaders(t *testing.T) {
	mnt, _ := mounted(t)
	item := filepath.Join(mnt, "lib", "item")
	if err := os.MkdirAll(item, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(item, "f.bin")
	v1 := bytes.Repeat([]byte{1}, 1<<20)
	if err := os.WriteFile(path, v1, 0o644); err != nil {
		t.Fatal(err)
	}
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	buf := make([]byte, 64<<10)
	if _, err := old.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	v2 := bytes.Repeat([]byte{2}, 3<<20)
	if err := os.WriteFile(path, v2, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("new reader while an old one is open: %d bytes, want %d of v2: %v", len(got), len(v2), err)
	}
	// The old reader still reads v1 to its end, and nothing past it.
	rest := make([]byte, 2<<20)
	n, _ := old.ReadAt(rest, 512<<10)
	if n != len(v1)-512<<10 || !bytes.Equal(rest[:n], v1[512<<10:]) {
		t.Fatalf("old reader read %d bytes from the middle, want the %d left of v1", n, len(v1)-512<<10)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("new reader after the old one read on: %d bytes, want %d of v2: %v", len(got), len(v2), err)
	}
}
