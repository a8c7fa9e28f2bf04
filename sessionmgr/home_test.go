package sessionmgr

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A home opened once with a catalog URL remembers it: the next open with
// none uses the same catalog. A URL that does not open is not remembered,
// and a home with no meta.url (every home of earlier releases) keeps its
// Badger catalog in HOME/meta.
func TestHomeRemembersCatalogURL(t *testing.T) {
	ctx := context.Background()
	home, elsewhere := t.TempDir(), t.TempDir()
	open := func(meta string) (*Manager, error) {
		return Open(Options{Home: home, Meta: meta, ReapInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	}
	m, err := open("")
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, err := os.Stat(filepath.Join(home, "meta", "MANIFEST")); err != nil {
		t.Fatalf("default catalog not in HOME/meta: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, metaURLFile)); !os.IsNotExist(err) {
		t.Fatalf("the default was remembered: %v", err)
	}

	url := "badger://" + filepath.Join(elsewhere, "cat")
	m, err = open(url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateLibrary(ctx, LibraryCreateSpec{Name: "Remembered"}, ""); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, err := open("etcd://127.0.0.1:1/x?dial-timeout=100ms"); err == nil {
		t.Fatal("an unreachable etcd opened")
	}
	b, err := os.ReadFile(filepath.Join(home, metaURLFile))
	if err != nil || strings.TrimSpace(string(b)) != url {
		t.Fatalf("meta.url = %q %v, want %q", b, err, url)
	}
	m, err = open("")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	libs, err := m.ListLibraries(ctx)
	if err != nil || len(libs) != 1 || libs[0].Name != "Remembered" {
		t.Fatalf("libraries after reopen: %+v %v", libs, err)
	}
}
