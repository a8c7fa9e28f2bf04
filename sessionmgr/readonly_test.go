package sessionmgr

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A read-only manager refuses every change with KindUnauthorized (cause
// ErrReadOnly) and serves everything else: reads, download sessions,
// fsck. Open and the reaper leave what a writer left behind alone.

// readOnlyFixture is a home written by a read-write manager and then
// reopened read-only.
type readOnlyFixture struct {
	e                     *testEnv
	lib, emptyLib         string
	item, emptyItem       string
	active, canceled      string // update sessions left by the writer
	activeStaging         string // the active session's staging directory
	fullContentVersion    string
	libraries, itemsInLib int
}

func newReadOnlyFixture(t *testing.T) *readOnlyFixture {
	e := newTestEnvInline(t, -1) // staged bytes in files, to see them kept
	f := &readOnlyFixture{e: e}
	f.lib = e.library("lib")
	f.emptyLib = e.library("empty-lib")
	f.item = e.item(f.lib, "full")
	f.emptyItem = e.item(f.lib, "empty")
	e.commit(f.item, "a.txt", "hello")
	f.canceled = e.updateSession(f.emptyItem)
	e.must(e.m.CancelUpdateSession(e.ctx, f.canceled))
	f.active = e.updateSession(f.item)
	e.upload(f.active, "b.txt", "staged")
	f.activeStaging = filepath.Join(e.home, "storage", "staging", f.active)
	e.close()

	e.readOnly = true
	e.open()
	if !e.m.ReadOnly() {
		t.Fatal("ReadOnly() = false on a manager opened read-only")
	}
	it, err := e.m.GetItem(e.ctx, f.item)
	e.must(err)
	f.fullContentVersion = it.ContentVersion
	libs, err := e.m.ListLibraries(e.ctx)
	e.must(err)
	items, err := e.m.ListItems(e.ctx, f.lib)
	e.must(err)
	f.libraries, f.itemsInLib = len(libs), len(items)
	return f
}

func TestReadOnlyRefusesChanges(t *testing.T) {
	t.Parallel()
	f := newReadOnlyFixture(t)
	e := f.e
	ctx, m := e.ctx, e.m
	name := "renamed"
	mode := uint32(0o600)
	changes := []struct {
		name string
		call func() error
	}{
		{"CreateLibrary", func() error {
			_, err := m.CreateLibrary(ctx, LibraryCreateSpec{Name: "new"}, "")
			return err
		}},
		{"UpdateLibrary", func() error { return m.UpdateLibrary(ctx, f.lib, LibraryUpdateSpec{Name: &name}) }},
		{"SetLibraryPosix", func() error { return m.SetLibraryPosix(ctx, f.lib, PosixChange{Mode: &mode}) }},
		{"DeleteLibrary", func() error { return m.DeleteLibrary(ctx, f.lib) }},
		{"ValidateUpdateSession", func() error { _, err := m.ValidateUpdateSession(ctx, f.active); return err }},
		{"DeleteLibraryIfEmpty", func() error { return m.DeleteLibraryIfEmpty(ctx, f.emptyLib) }},
		{"CreateItem", func() error {
			_, err := m.CreateItem(ctx, ItemCreateSpec{LibraryID: f.lib, Name: "new"}, "")
			return err
		}},
		{"UpdateItem", func() error { return m.UpdateItem(ctx, f.item, ItemUpdateSpec{Name: &name}) }},
		{"SetItemPosix", func() error { return m.SetItemPosix(ctx, f.item, PosixChange{Mode: &mode}) }},
		{"DeleteItem", func() error { return m.DeleteItem(ctx, f.item) }},
		{"DeleteItemIfEmpty", func() error { return m.DeleteItemIfEmpty(ctx, f.emptyItem) }},
		{"SetFilePosix", func() error { return m.SetFilePosix(ctx, f.item, "a.txt", PosixChange{Mode: &mode}) }},
		{"CreateUpdateSession", func() error {
			_, err := m.CreateUpdateSession(ctx, UpdateSessionCreateSpec{LibraryItemID: f.emptyItem}, "")
			return err
		}},
		{"UpdateUpdateSession", func() error { return m.UpdateUpdateSession(ctx, f.active, UpdateSessionUpdateSpec{}) }},
		{"KeepAliveUpdateSession", func() error { return m.KeepAliveUpdateSession(ctx, f.active, nil) }},
		{"AddFile", func() error {
			_, err := m.AddFile(ctx, f.active, FileAddSpec{Name: "c.txt", SourceType: SourcePush})
			return err
		}},
		{"RemoveSessionFile", func() error { return m.RemoveSessionFile(ctx, f.active, "a.txt") }},
		{"OpenUpload", func() error {
			sf, err := m.OpenUpload(ctx, f.active, "b.txt", UploadOptions{})
			if err == nil {
				sf.Close()
			}
			return err
		}},
		{"CompleteUpdateSession", func() error { return m.CompleteUpdateSession(ctx, f.active) }},
		{"CancelUpdateSession", func() error { return m.CancelUpdateSession(ctx, f.active) }},
		{"FailUpdateSession", func() error { return m.FailUpdateSession(ctx, f.active, "gave up") }},
		{"DeleteUpdateSession", func() error { return m.DeleteUpdateSession(ctx, f.canceled) }},
		{"OpenDraft", func() error {
			d, err := m.OpenDraft(ctx, f.item, "a.txt")
			if err == nil {
				d.Close(ctx)
			}
			return err
		}},
		{"CreateFile", func() error {
			d, err := m.CreateFile(ctx, f.item, "new.txt", Posix{Mode: 0o644})
			if err == nil {
				d.Close(ctx)
			}
			return err
		}},
		{"RemoveFile", func() error { return m.RemoveFile(ctx, f.item, "a.txt") }},
		{"RenameFile", func() error { return m.RenameFile(ctx, f.item, "a.txt", "z.txt", false) }},
	}
	for _, c := range changes {
		err := c.call()
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s: got %v, want ErrReadOnly", c.name, err)
			continue
		}
		if k := KindOf(err); k != KindUnauthorized {
			t.Errorf("%s: kind %s, want %s (%v)", c.name, k, KindUnauthorized, err)
		}
	}
	f.checkUnchanged(t)
}

func TestReadOnlyServesReads(t *testing.T) {
	t.Parallel()
	f := newReadOnlyFixture(t)
	e := f.e
	ctx, m := e.ctx, e.m
	libName, itemName := "lib", "full"
	var down, failed string
	reads := []struct {
		name string
		call func() error
	}{
		{"GetLibrary", func() error { _, err := m.GetLibrary(ctx, f.lib); return err }},
		{"LibraryByName", func() error { _, err := m.LibraryByName(ctx, "lib"); return err }},
		{"ListLibraries", func() error { _, err := m.ListLibraries(ctx); return err }},
		{"FindLibraries", func() error { _, err := m.FindLibraries(ctx, LibraryFindSpec{Name: &libName}); return err }},
		{"GetItem", func() error { _, err := m.GetItem(ctx, f.item); return err }},
		{"ItemByName", func() error { _, err := m.ItemByName(ctx, f.lib, "full"); return err }},
		{"ListItems", func() error { _, err := m.ListItems(ctx, f.lib); return err }},
		{"FindItems", func() error { _, err := m.FindItems(ctx, ItemFindSpec{Name: &itemName}); return err }},
		{"ListFiles", func() error { _, err := m.ListFiles(ctx, f.item); return err }},
		{"GetFile", func() error { _, err := m.GetFile(ctx, f.item, "a.txt"); return err }},
		{"ListStorage", func() error { _, err := m.ListStorage(ctx, f.item); return err }},
		{"GetStorage", func() error { _, err := m.GetStorage(ctx, f.item, "a.txt"); return err }},
		{"ItemEntries", func() error { _, err := m.ItemEntries(ctx, f.item); return err }},
		{"ItemEntry", func() error { _, err := m.ItemEntry(ctx, f.item, "a.txt"); return err }},
		{"FileXattr", func() error { _, err := m.FileXattr(ctx, f.item, "a.txt", "sha256"); return err }},
		{"ActiveUpdateSession", func() error { _, err := m.ActiveUpdateSession(ctx, f.item); return err }},
		{"GetUpdateSession", func() error { _, err := m.GetUpdateSession(ctx, f.active); return err }},
		{"ListUpdateSessions", func() error { _, err := m.ListUpdateSessions(ctx, ""); return err }},
		{"ListSessionFiles", func() error { _, err := m.ListSessionFiles(ctx, f.active); return err }},
		{"GetSessionFile", func() error { _, err := m.GetSessionFile(ctx, f.active, "b.txt"); return err }},
		{"ProbeTransferEndpoint", func() error {
			res, err := m.ProbeTransferEndpoint(ctx, TransferEndpoint{URI: fileURI(filepath.Join(e.home, "storage"))})
			_ = res // a directory is RESOURCE_NOT_FOUND: a status, not an error
			return err
		}},
		{"CreateDownloadSession", func() (err error) {
			down, err = m.CreateDownloadSession(ctx, DownloadSessionCreateSpec{LibraryItemID: f.item}, "")
			return err
		}},
		{"GetDownloadSession", func() error { _, err := m.GetDownloadSession(ctx, down); return err }},
		{"ListDownloadSessions", func() error { _, err := m.ListDownloadSessions(ctx, f.item); return err }},
		{"KeepAliveDownloadSession", func() error { return m.KeepAliveDownloadSession(ctx, down, nil) }},
		{"ListDownloadFiles", func() error { _, err := m.ListDownloadFiles(ctx, down); return err }},
		{"GetDownloadFile", func() error { _, err := m.GetDownloadFile(ctx, down, "a.txt"); return err }},
		{"PrepareDownloadFile", func() error { _, err := m.PrepareDownloadFile(ctx, down, "a.txt", ""); return err }},
		{"OpenDownload", func() error {
			r, err := m.OpenDownload(ctx, down, "a.txt")
			if err != nil {
				return err
			}
			defer r.Close()
			if got, err := e.readAll(r); err != nil || got != "hello" {
				t.Errorf("read %q, %v", got, err)
			}
			return nil
		}},
		{"OpenFileReader", func() error {
			r, err := m.OpenFileReader(ctx, f.item, "a.txt")
			if err != nil {
				return err
			}
			return r.Close()
		}},
		{"CancelDownloadSession", func() error { return m.CancelDownloadSession(ctx, down) }},
		{"DeleteDownloadSession", func() error { return m.DeleteDownloadSession(ctx, down) }},
		{"FailDownloadSession", func() (err error) {
			if failed, err = m.CreateDownloadSession(ctx, DownloadSessionCreateSpec{LibraryItemID: f.item}, ""); err != nil {
				return err
			}
			return m.FailDownloadSession(ctx, failed, "gave up")
		}},
		{"Fsck", func() error {
			rep, err := m.Fsck(ctx, nil)
			if err == nil && len(rep.Problems) > 0 {
				t.Errorf("fsck: %+v", rep.Problems)
			}
			return err
		}},
		{"StorageStats", func() error { _, err := m.StorageStats(ctx); return err }},
		{"ExpireDue", func() error {
			e.clock.Advance(3 * testTimeout)
			_, err := m.ExpireDue(ctx) // ends the failed download session only
			return err
		}},
	}
	for _, c := range reads {
		if err := c.call(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if _, err := m.GetDownloadSession(ctx, failed); !errors.Is(err, ErrNotFound) {
		t.Errorf("the reaper kept an expired download session: %v", err)
	}
	f.checkUnchanged(t)
}

// checkUnchanged checks that nothing a writer left was touched: the
// catalog's libraries and items, the update sessions (not even expired by
// the reaper) and their staged bytes.
func (f *readOnlyFixture) checkUnchanged(t *testing.T) {
	t.Helper()
	e := f.e
	libs, err := e.m.ListLibraries(e.ctx)
	e.must(err)
	items, err := e.m.ListItems(e.ctx, f.lib)
	e.must(err)
	if len(libs) != f.libraries || len(items) != f.itemsInLib {
		t.Errorf("%d libraries, %d items in lib; want %d, %d", len(libs), len(items), f.libraries, f.itemsInLib)
	}
	it, err := e.m.GetItem(e.ctx, f.item)
	e.must(err)
	if it.ContentVersion != f.fullContentVersion {
		t.Errorf("content version %s, want %s", it.ContentVersion, f.fullContentVersion)
	}
	if s := e.updateState(f.active); s != StateActive {
		t.Errorf("the writer's ACTIVE update session is %s", s)
	}
	if s := e.updateState(f.canceled); s != StateCanceled {
		t.Errorf("the writer's CANCELED update session is %s", s)
	}
	if files, err := os.ReadDir(f.activeStaging); err != nil || len(files) != 1 {
		t.Errorf("staging of the ACTIVE session: %d files, %v", len(files), err)
	}
}
