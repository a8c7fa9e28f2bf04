package sessionmgr

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"clfs/meta"
)

// checkStorage asserts that the blobs on disk are exactly the referenced
// ones, and that fsck is clean: nothing leaked, nothing lost.
func (e *testEnv) checkStorage() {
	e.t.Helper()
	e.collectFreed()
	var refs []meta.ContentRefEntry
	var backings []meta.Backing
	e.must(e.m.store.View(e.ctx, func(tx *meta.Tx) (err error) {
		if refs, err = tx.ContentRefs(); err != nil {
			return err
		}
		backings, err = tx.Backings()
		return err
	}))
	var referenced, onDisk []string
	for _, r := range refs {
		referenced = append(referenced, r.Key.String())
	}
	stored := map[string]bool{} // blob files and inline blobs
	for _, b := range backings {
		blobs, err := listBlobs(b.Root)
		e.must(err)
		for _, sha := range blobs {
			stored[meta.ContentKey{BackingID: b.ID, SHA256: sha}.String()] = true
		}
	}
	e.must(e.m.store.View(e.ctx, func(tx *meta.Tx) error {
		return tx.InlineContents(func(k meta.ContentKey, _ []byte) error {
			stored[k.String()] = true
			return nil
		})
	}))
	for k := range stored {
		onDisk = append(onDisk, k)
	}
	slices.Sort(referenced)
	slices.Sort(onDisk)
	if !slices.Equal(referenced, onDisk) {
		e.t.Errorf("blobs on disk %v, referenced %v", onDisk, referenced)
	}
	rep, err := e.m.Fsck(e.ctx, nil)
	e.must(err)
	if len(rep.Problems) != 0 {
		e.t.Errorf("fsck: %+v", rep.Problems)
	}
}

// TestOneActiveSessionUnderRace: of concurrent creates on one item,
// exactly one wins; the others are ResourceBusy.
func TestOneActiveSessionUnderRace(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "iso")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.m.CreateUpdateSession(e.ctx, UpdateSessionCreateSpec{LibraryItemID: item}, "")
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch KindOf(err) {
		case KindError:
			if err == nil {
				won++
				continue
			}
			t.Errorf("create: %v", err)
		case KindResourceBusy:
		default:
			t.Errorf("create: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d creates won", won)
	}
}

// TestCompleteRacesCancel: complete and cancel of one session, at once:
// exactly one of them happens, and storage stays consistent either way.
func TestCompleteRacesCancel(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	lib := e.library("lib")
	for round := range 6 {
		item := e.item(lib, fmt.Sprintf("iso%d", round))
		e.commit(item, "a", "old")
		s := e.updateSession(item)
		e.upload(s, "a", fmt.Sprintf("new %d", round))
		e.upload(s, "b", "bbb")
		var wg sync.WaitGroup
		var errComplete, errCancel error
		wg.Add(2)
		go func() { defer wg.Done(); errComplete = e.m.CompleteUpdateSession(e.ctx, s) }()
		go func() { defer wg.Done(); errCancel = e.m.CancelUpdateSession(e.ctx, s) }()
		wg.Wait()
		state := e.updateState(s)
		files, err := e.m.ListFiles(e.ctx, item)
		e.must(err)
		switch {
		case errComplete == nil && errCancel != nil:
			if state != StateDone || len(files) != 2 {
				t.Fatalf("round %d: complete won but state %s, %d files", round, state, len(files))
			}
			wantKind(t, errCancel, KindNotAllowedInCurrentState)
		case errCancel == nil && errComplete != nil:
			if state != StateCanceled || len(files) != 1 || files[0].Version != "1" {
				t.Fatalf("round %d: cancel won but state %s, files %+v", round, state, files)
			}
			wantKind(t, errComplete, KindNotAllowedInCurrentState)
		default:
			t.Fatalf("round %d: complete %v, cancel %v", round, errComplete, errCancel)
		}
		e.checkStorage()
	}
}

// TestCompleteRacesReAdd: a client re-adding a file while its complete
// runs gets NotAllowedInCurrentState from one of them; the session never
// goes to ERROR for it and can complete afterwards.
func TestCompleteRacesReAdd(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	lib := e.library("lib")
	for round := range 6 {
		item := e.item(lib, fmt.Sprintf("iso%d", round))
		s := e.updateSession(item)
		e.upload(s, "a", "first")
		e.upload(s, "b", "bbb")
		var wg sync.WaitGroup
		var errComplete, errAdd error
		wg.Add(2)
		go func() { defer wg.Done(); errComplete = e.m.CompleteUpdateSession(e.ctx, s) }()
		go func() {
			defer wg.Done()
			_, errAdd = e.m.AddFile(e.ctx, s, FileAddSpec{Name: "a", SourceType: SourcePush})
		}()
		wg.Wait()
		switch state := e.updateState(s); {
		case errComplete == nil:
			wantKind(t, errAdd, KindNotAllowedInCurrentState)
			if state != StateDone {
				t.Fatalf("round %d: complete won, state %s", round, state)
			}
		case errAdd == nil:
			wantKind(t, errComplete, KindNotAllowedInCurrentState)
			if state != StateActive {
				t.Fatalf("round %d: re-add won, complete left the session %s", round, state)
			}
			e.upload(s, "a", "second")
			e.must(e.m.CompleteUpdateSession(e.ctx, s))
		default:
			t.Fatalf("round %d: complete %v, add %v", round, errComplete, errAdd)
		}
		e.checkStorage()
	}
}

// TestReaperRacesActivity: the reaper running while a client keeps its
// session alive never expires it.
func TestReaperRacesActivity(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "iso")
	s := e.updateSession(item)
	_, err := e.m.AddFile(e.ctx, s, FileAddSpec{Name: "a", SourceType: SourcePush})
	e.must(err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.m.ExpireDue(e.ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 200 {
		// Each step is well inside the timeout, and each is activity.
		e.clock.Advance(testTimeout / 3)
		if i%2 == 0 {
			e.must(e.m.KeepAliveUpdateSession(e.ctx, s, nil))
		} else {
			sf, err := e.m.OpenUpload(e.ctx, s, "a", UploadOptions{})
			e.must(err)
			_, err = sf.Write([]byte("x"))
			e.must(err)
			e.must(sf.Close())
		}
	}
	close(stop)
	wg.Wait()
	if got := e.updateState(s); got != StateActive {
		t.Fatalf("session %s while kept alive", got)
	}
}

// TestPinsUnderConcurrentCommits: download sessions come and go while
// commits replace the files they pin; every reader sees a consistent
// version and no blob leaks or goes missing.
func TestPinsUnderConcurrentCommits(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "iso")
	e.commit(item, "a", "v0")
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				d, err := e.m.CreateDownloadSession(e.ctx, DownloadSessionCreateSpec{LibraryItemID: item}, "")
				if err != nil {
					t.Error(err)
					return
				}
				f, err := e.m.GetDownloadFile(e.ctx, d, "a")
				if err != nil {
					t.Error(err)
					return
				}
				r, err := e.m.OpenDownload(e.ctx, d, "a")
				if err != nil {
					t.Error(err)
					return
				}
				got, err := e.readAll(r)
				r.Close()
				if err != nil {
					t.Error(err)
					return
				}
				if want := fmt.Sprintf("v%d", mustAtoi(f.Version)-1); got != want {
					t.Errorf("download of version %s read %q, want %q", f.Version, got, want)
				}
				if err := e.m.DeleteDownloadSession(e.ctx, d); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for v := 1; v <= 15; v++ {
		s := e.updateSession(item)
		e.upload(s, "a", fmt.Sprintf("v%d", v))
		e.must(e.m.CompleteUpdateSession(e.ctx, s))
	}
	close(done)
	wg.Wait()
	e.checkStorage()
}

func mustAtoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

// TestSharedContent: identical bytes are stored once, across files and
// items; the blob lives as long as any of them.
func TestSharedContent(t *testing.T) {
	t.Parallel()
	e := newTestEnvInline(t, -1) // about blob files and staging on disk
	lib := e.library("lib")
	a := e.item(lib, "a")
	b := e.item(lib, "b")
	e.commit(a, "x", "same", "y", "same")
	e.commit(b, "z", "same")
	storage := filepath.Join(e.home, "storage")
	blobs, err := listBlobs(storage)
	e.must(err)
	if len(blobs) != 1 {
		t.Fatalf("%d blobs for one content", len(blobs))
	}
	path := contentPath(storage, blobs[0])
	e.checkStorage()

	// Replace one copy with the same bytes: still one blob.
	e.commit(a, "x", "same")
	e.checkStorage()
	e.must(e.m.DeleteItem(e.ctx, a))
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("blob gone while item b uses it: %v", err)
	}
	e.checkStorage()
	s := e.updateSession(b)
	e.must(e.m.RemoveSessionFile(e.ctx, s, "z"))
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	if !e.collected(path) {
		t.Fatalf("blob %s survived its last reference", hex.EncodeToString(blobs[0][:4]))
	}
	e.checkStorage()
}

// TestLibraryOnItsOwnBacking: a library with its own storage directory
// keeps content and staging there, and the whole lifecycle works on it.
func TestLibraryOnItsOwnBacking(t *testing.T) {
	t.Parallel()
	e := newTestEnvInline(t, -1) // about blob files and staging on disk
	dir := t.TempDir()
	lib, err := e.m.CreateLibrary(e.ctx, LibraryCreateSpec{Name: "elsewhere", StorageDir: dir}, "")
	e.must(err)
	info, err := e.m.GetLibrary(e.ctx, lib)
	e.must(err)
	if len(info.StorageBackings) != 1 || info.StorageBackings[0].StorageURI != fileURI(dir) {
		t.Fatalf("storage backings %+v", info.StorageBackings)
	}
	item := e.item(lib, "iso")
	e.commit(item, "a", "on the other disk")
	if p := e.storagePath(item, "a"); filepath.Dir(filepath.Dir(filepath.Dir(p))) != dir {
		t.Fatalf("blob stored at %s, not under %s", p, dir)
	}
	s := e.updateSession(item)
	e.upload(s, "b", "staged elsewhere")
	if _, err := os.Stat(stagingDir(dir, s)); err != nil {
		t.Fatalf("staging not on the library's backing: %v", err)
	}
	e.clock.Advance(testTimeout + 1)
	_, err = e.m.ExpireDue(e.ctx)
	e.must(err)
	if _, err := os.Stat(stagingDir(dir, s)); !os.IsNotExist(err) {
		t.Fatalf("staging survived expiry: %v", err)
	}
	e.checkStorage()
	e.must(e.m.DeleteLibrary(e.ctx, lib))
	e.checkStorage()
}

// TestClientTokenUnderRace: concurrent creates with one client token
// create one object; every caller gets its id.
func TestClientTokenUnderRace(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	lib := e.library("lib")
	item := e.item(lib, "iso")
	const n = 6
	for _, c := range []struct {
		name   string
		create func(token string) (string, error)
	}{
		{"library", func(token string) (string, error) {
			return e.m.CreateLibrary(e.ctx, LibraryCreateSpec{Name: "raced"}, token)
		}},
		{"item", func(token string) (string, error) {
			return e.m.CreateItem(e.ctx, ItemCreateSpec{LibraryID: lib, Name: "raced"}, token)
		}},
		{"update session", func(token string) (string, error) {
			return e.m.CreateUpdateSession(e.ctx, UpdateSessionCreateSpec{LibraryItemID: item}, token)
		}},
		{"download session", func(token string) (string, error) {
			return e.m.CreateDownloadSession(e.ctx, DownloadSessionCreateSpec{LibraryItemID: item}, token)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			token := uuid.NewString()
			ids := make([]string, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() { defer wg.Done(); ids[i], errs[i] = c.create(token) }()
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil || ids[i] != ids[0] {
					t.Fatalf("creates returned %v, %v", ids, errs)
				}
			}
		})
	}
	downs, err := e.m.ListDownloadSessions(e.ctx, item)
	e.must(err)
	if len(downs) != 1 {
		t.Fatalf("%d download sessions", len(downs))
	}
}

// TestItemDeleteRacesCreate: a session created while its item is being
// deleted either fails (NotFound) or is ended by the delete; it never
// stays ACTIVE on an item that is gone.
func TestItemDeleteRacesCreate(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	lib := e.library("lib")
	for round := range 20 {
		item := e.item(lib, fmt.Sprintf("iso%d", round))
		e.commit(item, "a", "aaa")
		var wg sync.WaitGroup
		var up, down string
		var errUp, errDown, errDel error
		wg.Add(3)
		go func() {
			defer wg.Done()
			up, errUp = e.m.CreateUpdateSession(e.ctx, UpdateSessionCreateSpec{LibraryItemID: item}, "")
		}()
		go func() {
			defer wg.Done()
			down, errDown = e.m.CreateDownloadSession(e.ctx, DownloadSessionCreateSpec{LibraryItemID: item}, "")
		}()
		go func() { defer wg.Done(); errDel = e.m.DeleteItem(e.ctx, item) }()
		wg.Wait()
		e.must(errDel)
		if errUp != nil {
			wantKind(t, errUp, KindNotFound)
		} else if got := e.updateState(up); got != StateFailed {
			t.Fatalf("round %d: update session %s on a deleted item", round, got)
		}
		if errDown != nil {
			wantKind(t, errDown, KindNotFound)
		} else if got := e.downloadState(down); got != StateFailed {
			t.Fatalf("round %d: download session %s on a deleted item", round, got)
		}
	}
	e.checkStorage()
}

// TestLibraryDeleteRacesItemCreate: an item created while its library is
// being deleted either fails (NotFound) or is deleted with it; no item is
// left in a library that is gone.
func TestLibraryDeleteRacesItemCreate(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	for round := range 20 {
		lib := e.library(fmt.Sprintf("lib%d", round))
		e.item(lib, "first")
		var wg sync.WaitGroup
		var item string
		var errItem, errDel error
		wg.Add(2)
		go func() {
			defer wg.Done()
			item, errItem = e.m.CreateItem(e.ctx, ItemCreateSpec{LibraryID: lib, Name: "raced"}, "")
		}()
		go func() { defer wg.Done(); errDel = e.m.DeleteLibrary(e.ctx, lib) }()
		wg.Wait()
		e.must(errDel)
		if errItem != nil {
			wantKind(t, errItem, KindNotFound)
			continue
		}
		if _, err := e.m.GetItem(e.ctx, item); KindOf(err) != KindNotFound {
			t.Fatalf("round %d: item of a deleted library: %v", round, err)
		}
	}
	// Every item is in a library that exists: find works.
	if _, err := e.m.FindItems(e.ctx, ItemFindSpec{Name: ptr("raced")}); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }
