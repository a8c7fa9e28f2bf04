package sessionmgr

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestRenameLibrary(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	a := e.library("a")
	e.item(a, "item")

	// Onto a free name; the same name; a name differing in case.
	e.must(e.m.RenameLibrary(e.ctx, "a", "b", false))
	e.must(e.m.RenameLibrary(e.ctx, "b", "b", true))
	e.must(e.m.RenameLibrary(e.ctx, "b", "B", true))
	if lib, err := e.m.GetLibrary(e.ctx, a); err != nil || lib.Name != "B" || lib.Version != "3" {
		t.Fatalf("renamed library: %+v, %v; want B at version 3", lib, err)
	}
	if _, err := e.m.ItemByName(e.ctx, a, "item"); err != nil {
		t.Fatalf("the item of a renamed library: %v", err)
	}
	wantKind(t, e.m.RenameLibrary(e.ctx, "a", "c", false), KindNotFound)
	wantKind(t, e.m.RenameLibrary(e.ctx, "B", "x/y", false), KindInvalidArgument)

	// Over an empty library: replaced.
	empty := e.library("empty")
	wantKind(t, e.m.RenameLibrary(e.ctx, "B", "empty", true), KindAlreadyExists)
	e.must(e.m.RenameLibrary(e.ctx, "B", "empty", false))
	if _, err := e.m.GetLibrary(e.ctx, empty); KindOf(err) != KindNotFound {
		t.Fatalf("replaced library: %v", err)
	}
	if lib, err := e.m.LibraryByName(e.ctx, "empty"); err != nil || lib.ID != a {
		t.Fatalf("library of the replaced name: %+v, %v; want %s", lib, err, a)
	}

	// Over a library with items: ErrNotEmpty, nothing changed.
	full := e.library("full")
	e.item(full, "x")
	err := e.m.RenameLibrary(e.ctx, "empty", "full", false)
	if !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("rename over a library with items: %v, want ErrNotEmpty", err)
	}
	for name, id := range map[string]string{"empty": a, "full": full} {
		if lib, err := e.m.LibraryByName(e.ctx, name); err != nil || lib.ID != id {
			t.Fatalf("library %q after a refused rename: %+v, %v", name, lib, err)
		}
	}
}

func TestRenameItem(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	lib := e.library("lib")
	a := e.item(lib, "a")
	e.commit(a, "f", "data")

	e.must(e.m.RenameItem(e.ctx, lib, "a", "b", false))
	e.must(e.m.RenameItem(e.ctx, lib, "b", "b", true))
	e.must(e.m.RenameItem(e.ctx, lib, "b", "B", true))
	if it, err := e.m.GetItem(e.ctx, a); err != nil || it.Name != "B" || it.ContentVersion != "2" {
		t.Fatalf("renamed item: %+v, %v; want B, its content version unchanged", it, err)
	}
	wantKind(t, e.m.RenameItem(e.ctx, lib, "a", "c", false), KindNotFound)
	wantKind(t, e.m.RenameItem(e.ctx, lib, "B", ".", false), KindInvalidArgument)

	// Over an empty item, even with a client's session on it: replaced,
	// the session ERROR, as DeleteItemIfEmpty does.
	empty := e.item(lib, "empty")
	s := e.updateSession(empty)
	wantKind(t, e.m.RenameItem(e.ctx, lib, "B", "empty", true), KindAlreadyExists)
	e.must(e.m.RenameItem(e.ctx, lib, "B", "empty", false))
	if _, err := e.m.GetItem(e.ctx, empty); KindOf(err) != KindNotFound {
		t.Fatalf("replaced item: %v", err)
	}
	if got := e.updateState(s); got != StateFailed {
		t.Fatalf("session on the replaced item: %s, want ERROR", got)
	}
	if f, err := e.m.GetFile(e.ctx, a, "f"); err != nil || f.Size != 4 {
		t.Fatalf("file of the renamed item: %+v, %v", f, err)
	}

	// Over an item with a committed file, or a new name of the mount's
	// not committed yet: ErrNotEmpty, nothing changed.
	full := e.item(lib, "full")
	e.commit(full, "g", "x")
	pending := e.item(lib, "pending")
	d, err := e.m.CreateFile(e.ctx, pending, "new", Posix{Mode: 0o644})
	e.must(err)
	for _, target := range []string{"full", "pending"} {
		if err := e.m.RenameItem(e.ctx, lib, "empty", target, false); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("rename over item %s: %v, want ErrNotEmpty", target, err)
		}
	}
	e.must(d.Close(e.ctx))
	for name, id := range map[string]string{"empty": a, "full": full, "pending": pending} {
		if it, err := e.m.ItemByName(e.ctx, lib, name); err != nil || it.ID != id {
			t.Fatalf("item %q after a refused rename: %+v, %v", name, it, err)
		}
	}
	if _, err := e.m.GetFile(e.ctx, pending, "new"); err != nil {
		t.Fatalf("new name committed at its close: %v", err)
	}
	e.checkStorage()
}

// TestRenameItemRacesCommit: a rename over an empty item races a cp into
// it. Either the rename fails (ErrNotEmpty) and the file is there, or the
// rename replaced the item and the commit failed: never both.
func TestRenameItemRacesCommit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	lib := e.library("lib")
	var replaced, kept int
	for round := range raceRounds {
		src := e.item(lib, fmt.Sprintf("src%d", round))
		dst := fmt.Sprintf("dst%d", round)
		target := e.item(lib, dst)
		var errCommit, errRename error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			jitter()
			d, err := e.m.CreateFile(e.ctx, target, "f", Posix{Mode: 0o644})
			if err != nil {
				errCommit = err
				return
			}
			if _, err = d.WriteAt(e.ctx, []byte("data"), 0); err == nil {
				err = d.Commit(e.ctx)
			}
			if cerr := d.Close(e.ctx); err == nil {
				err = cerr
			}
			errCommit = err
		}()
		go func() {
			defer wg.Done()
			jitter()
			errRename = e.m.RenameItem(e.ctx, lib, fmt.Sprintf("src%d", round), dst, false)
		}()
		wg.Wait()
		it, errName := e.m.ItemByName(e.ctx, lib, dst)
		e.must(errName)
		switch {
		case errCommit == nil && errRename == nil:
			t.Fatalf("round %d: the commit and the rename over its item both succeeded: the file is lost", round)
		case errCommit == nil:
			if !errors.Is(errRename, ErrNotEmpty) {
				t.Fatalf("round %d: the commit won, the rename failed with %v, want ErrNotEmpty", round, errRename)
			}
			if _, err := e.m.GetFile(e.ctx, target, "f"); it.ID != target || err != nil {
				t.Fatalf("round %d: the commit won, but %s holds %s, its file: %v", round, dst, it.ID, err)
			}
			kept++
		case errRename == nil:
			if it.ID != src {
				t.Fatalf("round %d: the rename won, but %s holds %s, not %s", round, dst, it.ID, src)
			}
			replaced++
		default:
			t.Fatalf("round %d: both failed: commit %v, rename %v", round, errCommit, errRename)
		}
	}
	t.Logf("%d rounds: the rename won %d, the commit %d", raceRounds, replaced, kept)
	e.checkStorage()
}

// TestRenameLibraryRacesItemCreate: a rename over an empty library races
// the creation of an item in it: never both.
func TestRenameLibraryRacesItemCreate(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	var replaced, kept int
	for round := range raceRounds {
		src := e.library(fmt.Sprintf("src%d", round))
		dst := fmt.Sprintf("dst%d", round)
		target := e.library(dst)
		var item string
		var errCreate, errRename error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			jitter()
			item, errCreate = e.m.CreateItem(e.ctx, ItemCreateSpec{LibraryID: target, Name: "item"}, "")
		}()
		go func() {
			defer wg.Done()
			jitter()
			errRename = e.m.RenameLibrary(e.ctx, fmt.Sprintf("src%d", round), dst, false)
		}()
		wg.Wait()
		lib, errName := e.m.LibraryByName(e.ctx, dst)
		e.must(errName)
		switch {
		case errCreate == nil && errRename == nil:
			t.Fatalf("round %d: the create and the rename over its library both succeeded: the item is lost", round)
		case errCreate == nil:
			if !errors.Is(errRename, ErrNotEmpty) {
				t.Fatalf("round %d: the create won, the rename failed with %v, want ErrNotEmpty", round, errRename)
			}
			if _, err := e.m.GetItem(e.ctx, item); lib.ID != target || err != nil {
				t.Fatalf("round %d: the create won, but %s holds %s, its item: %v", round, dst, lib.ID, err)
			}
			kept++
		case errRename == nil:
			wantKind(t, errCreate, KindNotFound)
			if lib.ID != src {
				t.Fatalf("round %d: the rename won, but %s holds %s, not %s", round, dst, lib.ID, src)
			}
			replaced++
		default:
			t.Fatalf("round %d: both failed: create %v, rename %v", round, errCreate, errRename)
		}
	}
	t.Logf("%d rounds: the rename won %d, the create %d", raceRounds, replaced, kept)
}

func TestRenameReadOnly(t *testing.T) {
	t.Parallel()
	f := newReadOnlyFixture(t)
	e := f.e
	for what, err := range map[string]error{
		"RenameLibrary":          e.m.RenameLibrary(e.ctx, "lib", "renamed", false),
		"RenameLibrary over one": e.m.RenameLibrary(e.ctx, "lib", "empty-lib", false),
		"RenameItem":             e.m.RenameItem(e.ctx, f.lib, "full", "renamed", false),
		"RenameItem over one":    e.m.RenameItem(e.ctx, f.lib, "full", "empty", false),
	} {
		if !errors.Is(err, ErrReadOnly) || KindOf(err) != KindUnauthorized {
			t.Errorf("%s: %v, want ErrReadOnly", what, err)
		}
	}
	for _, name := range []string{"lib", "empty-lib"} {
		if _, err := e.m.LibraryByName(e.ctx, name); err != nil {
			t.Errorf("library %s after refused renames: %v", name, err)
		}
	}
	for _, name := range []string{"full", "empty"} {
		if _, err := e.m.ItemByName(e.ctx, f.lib, name); err != nil {
			t.Errorf("item %s after refused renames: %v", name, err)
		}
	}
}
