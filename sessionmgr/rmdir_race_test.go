package sessionmgr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// rmdir racing a cp: the check that an item (a library) is empty and its
// deletion are one, so a file committed (an item created) meanwhile either
// makes the delete fail with ErrNotEmpty or fails itself. It is never
// deleted with its item after its commit returned nil.

// raceRounds is how often each race is run: enough that the old code, which
// checked and deleted in two transactions, lost a file in most runs.
const raceRounds = 150

// jitter delays one side of a race by up to half a millisecond, so the two
// sides meet at different points of each other.
func jitter() { time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond) }

func TestDeleteItemIfEmptyRacesCommit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// prepare readies a commit of name in item; the returned func
		// commits it.
		prepare func(e *testEnv, item, name, data string) func() error
	}{
		{"mount draft", func(e *testEnv, item, name, data string) func() error {
			// cp: create, write, close. The new name appears only
			// with the create, so the race starts before it.
			return func() error {
				d, err := e.m.CreateFile(e.ctx, item, name, Posix{Mode: 0o644})
				if err != nil {
					return err
				}
				if _, err := d.WriteAt(e.ctx, []byte(data), 0); err != nil {
					d.Close(e.ctx)
					return err
				}
				err = d.Commit(e.ctx)
				if cerr := d.Close(e.ctx); err == nil {
					err = cerr
				}
				return err
			}
		}},
		{"API update session", func(e *testEnv, item, name, data string) func() error {
			// A client's session, uploaded and READY: only its
			// complete remains.
			s := e.updateSession(item)
			e.upload(s, name, data)
			return func() error { return e.m.CompleteUpdateSession(e.ctx, s) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t)
			lib := e.library("lib")
			var deleted, kept int
			for round := range raceRounds {
				item := e.item(lib, fmt.Sprintf("item%d", round))
				data := fmt.Sprintf("content %d", round)
				commit := tc.prepare(e, item, "f", data)
				var errCommit, errDelete error
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); jitter(); errCommit = commit() }()
				go func() { defer wg.Done(); jitter(); errDelete = e.m.DeleteItemIfEmpty(e.ctx, item) }()
				wg.Wait()
				_, errItem := e.m.GetItem(e.ctx, item)
				switch {
				case errCommit == nil && errDelete == nil:
					t.Fatalf("round %d: the commit and the delete both succeeded: a committed file was deleted with its item", round)
				case errCommit == nil:
					if !errors.Is(errDelete, ErrNotEmpty) {
						t.Fatalf("round %d: the commit won, the delete failed with %v, want ErrNotEmpty", round, errDelete)
					}
					f, err := e.m.GetFile(e.ctx, item, "f")
					if err != nil {
						t.Fatalf("round %d: the commit won, but its file: %v", round, err)
					}
					if f.Size != int64(len(data)) {
						t.Fatalf("round %d: committed file of %d bytes, want %d", round, f.Size, len(data))
					}
					kept++
				case errDelete == nil:
					if KindOf(errItem) != KindNotFound {
						t.Fatalf("round %d: the delete won, but the item: %v", round, errItem)
					}
					deleted++
				default:
					t.Fatalf("round %d: both failed: commit %v, delete %v", round, errCommit, errDelete)
				}
			}
			t.Logf("%d rounds: the delete won %d, the commit %d", raceRounds, deleted, kept)
			e.checkStorage()
		})
	}
}

func TestDeleteLibraryIfEmptyRacesItemCreate(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	var deleted, kept int
	for round := range raceRounds {
		lib := e.library(fmt.Sprintf("lib%d", round))
		var item string
		var errCreate, errDelete error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			jitter()
			item, errCreate = e.m.CreateItem(e.ctx, ItemCreateSpec{LibraryID: lib, Name: "item"}, "")
		}()
		go func() { defer wg.Done(); jitter(); errDelete = e.m.DeleteLibraryIfEmpty(e.ctx, lib) }()
		wg.Wait()
		switch {
		case errCreate == nil && errDelete == nil:
			t.Fatalf("round %d: the create and the delete both succeeded: a created item was deleted with its library", round)
		case errCreate == nil:
			if !errors.Is(errDelete, ErrNotEmpty) {
				t.Fatalf("round %d: the create won, the delete failed with %v, want ErrNotEmpty", round, errDelete)
			}
			if _, err := e.m.GetItem(e.ctx, item); err != nil {
				t.Fatalf("round %d: the create won, but its item: %v", round, err)
			}
			kept++
		case errDelete == nil:
			wantKind(t, errCreate, KindNotFound)
			if _, err := e.m.GetLibrary(e.ctx, lib); KindOf(err) != KindNotFound {
				t.Fatalf("round %d: the delete won, but the library: %v", round, err)
			}
			deleted++
		default:
			t.Fatalf("round %d: both failed: create %v, delete %v", round, errCreate, errDelete)
		}
	}
	t.Logf("%d rounds: the delete won %d, the create %d", raceRounds, deleted, kept)
}
