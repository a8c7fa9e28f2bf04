package fs

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// syncCounter counts the Manager.Sync calls that reach the session
// manager.
type syncCounter struct {
	Manager
	n atomic.Int32
}

func (c *syncCounter) Sync(ctx context.Context) error {
	c.n.Add(1)
	return c.Manager.Sync(ctx)
}

// fsync(2) of a committed file and fsyncdir of every kind of directory
// make the namespace changes durable: each reaches Manager.Sync, and
// none fails (fsync of a read-only descriptor used to be ENOTSUP).
func TestFsyncAndFsyncdirSyncTheCatalog(t *testing.T) {
	c := &syncCounter{Manager: openManager(t, t.TempDir(), false)}
	dir := mountFS(t, c)
	item := filepath.Join(dir, "lib", "item")
	for _, d := range []string{filepath.Join(dir, "lib"), item} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(item, "a"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(item, "a"), filepath.Join(item, "b")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what, path string
	}{
		{"fsyncdir of the root", dir},
		{"fsyncdir of a library", filepath.Join(dir, "lib")},
		{"fsyncdir of an item", item},
		{"fsync of a committed file", filepath.Join(item, "b")},
	} {
		f, err := os.Open(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		before := c.n.Load()
		err = f.Sync()
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", tc.what, err)
		}
		if c.n.Load() == before {
			t.Errorf("%s did not sync the catalog", tc.what)
		}
	}
	f, err := os.OpenFile(filepath.Join(item, "c"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("staged")); err != nil {
		t.Fatal(err)
	}
	before := c.n.Load()
	if err := f.Sync(); err != nil {
		t.Errorf("fsync of a file being written: %v", err)
	}
	if c.n.Load() == before {
		t.Error("fsync of a file being written did not sync the catalog")
	}
}
