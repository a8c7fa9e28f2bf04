package sessionmgr

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"clfs/meta"
)

// Table tests of the session state machines (spec §6.3, §8.2 and the
// recommendations of §12): one row per state × operation, checking the
// error kind and the state the session is left in.

// gone is the "state" of a session that was deleted: get says NotFound.
const gone State = "(deleted)"

// updateFixture is an item with one committed file (base.txt) and an
// update session on it that has uploaded new.txt (READY), so that every
// operation has something to act on in every state.
type updateFixture struct {
	e      *testEnv
	item   string
	s      string
	noItem bool // the item was deleted to reach the state
}

type updateStateCase struct {
	name  string
	state State
	reach func(f *updateFixture)
}

var updateStates = []updateStateCase{
	{"ACTIVE", StateActive, func(f *updateFixture) {}},
	{"DONE", StateDone, func(f *updateFixture) { f.e.must(f.e.m.CompleteUpdateSession(f.e.ctx, f.s)) }},
	{"ERROR", StateFailed, func(f *updateFixture) { f.e.must(f.e.m.FailUpdateSession(f.e.ctx, f.s, "client gave up")) }},
	{"CANCELED", StateCanceled, func(f *updateFixture) { f.e.must(f.e.m.CancelUpdateSession(f.e.ctx, f.s)) }},
	{"CANCELED(expired)", StateCanceled, func(f *updateFixture) {
		// The env is shared by the rows: this expires other rows'
		// leftovers too, which is harmless.
		f.e.clock.Advance(testTimeout + time.Second)
		_, err := f.e.m.ExpireDue(f.e.ctx)
		f.e.must(err)
		s, err := f.e.m.GetUpdateSession(f.e.ctx, f.s)
		f.e.must(err)
		if s.ErrorMessage == nil || s.ErrorMessage.DefaultMessage != expiredMessage {
			f.e.t.Fatalf("expired session has error message %+v", s.ErrorMessage)
		}
	}},
	{"ERROR(item deleted)", StateFailed, func(f *updateFixture) {
		f.e.must(f.e.m.DeleteItem(f.e.ctx, f.item))
		f.noItem = true
	}},
}

type updateOpCase struct {
	name string
	op   func(f *updateFixture) error
	// from ACTIVE: the error kind ("" = allowed) and resulting state.
	activeErr  Kind
	activeNext State
	// from a terminal state: the same.
	terminalErr  Kind
	terminalNext State // "" = unchanged
}

var na = KindNotAllowedInCurrentState

var updateOps = []updateOpCase{
	{"keep_alive", func(f *updateFixture) error {
		p := int64(50)
		return f.e.m.KeepAliveUpdateSession(f.e.ctx, f.s, &p)
	}, "", StateActive, na, ""},
	{"update", func(f *updateFixture) error {
		return f.e.m.UpdateUpdateSession(f.e.ctx, f.s, UpdateSessionUpdateSpec{
			WarningBehavior: []WarningBehavior{{Type: "SELF_SIGNED_CERTIFICATE", Ignored: true}},
		})
	}, "", StateActive, na, ""},
	{"add file", func(f *updateFixture) error {
		_, err := f.e.m.AddFile(f.e.ctx, f.s, FileAddSpec{Name: "extra.txt", SourceType: SourcePush})
		return err
	}, "", StateActive, na, ""},
	{"remove file", func(f *updateFixture) error {
		return f.e.m.RemoveSessionFile(f.e.ctx, f.s, "base.txt")
	}, "", StateActive, na, ""},
	{"validate", func(f *updateFixture) error {
		res, err := f.e.m.ValidateUpdateSession(f.e.ctx, f.s)
		if err == nil && res.HasErrors {
			return fmt.Errorf("validate reported errors: %+v", res)
		}
		return err
	}, "", StateActive, na, ""},
	{"complete", func(f *updateFixture) error {
		return f.e.m.CompleteUpdateSession(f.e.ctx, f.s)
	}, "", StateDone, na, ""},
	{"cancel", func(f *updateFixture) error {
		return f.e.m.CancelUpdateSession(f.e.ctx, f.s)
	}, "", StateCanceled, na, ""},
	{"fail", func(f *updateFixture) error {
		return f.e.m.FailUpdateSession(f.e.ctx, f.s, "disk on fire")
	}, "", StateFailed, na, ""},
	{"delete", func(f *updateFixture) error {
		return f.e.m.DeleteUpdateSession(f.e.ctx, f.s)
	}, na, StateActive, "", gone},
	{"OpenUpload", func(f *updateFixture) error {
		sf, err := f.e.m.OpenUpload(f.e.ctx, f.s, "new.txt", UploadOptions{})
		if err == nil {
			sf.Close()
		}
		return err
	}, "", StateActive, na, ""},
}

func TestUpdateSessionTransitions(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	parent := e.t
	lib := e.library("lib")
	n := 0
	for _, st := range updateStates {
		for _, op := range updateOps {
			t.Run(st.name+"/"+op.name, func(t *testing.T) {
				e.t = t
				defer func() { e.t = parent }()
				n++
				f := &updateFixture{e: e, item: e.item(lib, fmt.Sprintf("item%d", n))}
				e.commit(f.item, "base.txt", "base")
				f.s = e.updateSession(f.item)
				e.upload(f.s, "new.txt", "new")
				st.reach(f)
				if got := e.updateState(f.s); got != st.state {
					t.Fatalf("setup reached %s, want %s", got, st.state)
				}

				wantErr, wantNext := op.activeErr, op.activeNext
				if st.state != StateActive {
					wantErr, wantNext = op.terminalErr, op.terminalNext
					if wantNext == "" {
						wantNext = st.state
					}
				}
				err := op.op(f)
				wantKind(t, err, wantErr)
				if se := (*StateError)(nil); wantErr == na && !asStateError(err, &se) {
					t.Errorf("refusal is not a *StateError: %T %v", err, err)
				}

				got, err := e.m.GetUpdateSession(e.ctx, f.s)
				switch {
				case wantNext == gone:
					wantKind(t, err, KindNotFound)
				case err != nil:
					t.Fatal(err)
				case got.State != wantNext:
					t.Fatalf("state after %s: %s, want %s", op.name, got.State, wantNext)
				}
				// Only ACTIVE sessions hold the item (spec §12 #2): once
				// terminal, the item takes a new session.
				if wantNext != StateActive && !f.noItem {
					s2, err := e.m.CreateUpdateSession(e.ctx, UpdateSessionCreateSpec{LibraryItemID: f.item}, "")
					if err != nil {
						t.Fatalf("new session after %s: %v", op.name, err)
					}
					e.must(e.m.CancelUpdateSession(e.ctx, s2))
				}
			})
		}
	}
}

func asStateError(err error, target **StateError) bool {
	se, ok := err.(*StateError)
	if ok {
		*target = se
	}
	return ok
}

// downloadFixture is an item with one committed file (a.txt) and a
// download session on it.
type downloadFixture struct {
	e    *testEnv
	item string
	d    string
}

var downloadStates = []struct {
	name  string
	state State
	reach func(f *downloadFixture)
}{
	{"ACTIVE", StateActive, func(f *downloadFixture) {}},
	{"ERROR", StateFailed, func(f *downloadFixture) { f.e.must(f.e.m.FailDownloadSession(f.e.ctx, f.d, "client gave up")) }},
	{"CANCELED", StateCanceled, func(f *downloadFixture) { f.e.must(f.e.m.CancelDownloadSession(f.e.ctx, f.d)) }},
	{"CANCELED(expired)", StateCanceled, func(f *downloadFixture) {
		f.e.clock.Advance(testTimeout + time.Second)
		_, err := f.e.m.ExpireDue(f.e.ctx)
		f.e.must(err)
		s, err := f.e.m.GetDownloadSession(f.e.ctx, f.d)
		f.e.must(err)
		if s.ErrorMessage == nil || s.ErrorMessage.DefaultMessage != expiredMessage {
			f.e.t.Fatalf("expired session has error message %+v", s.ErrorMessage)
		}
	}},
	{"ERROR(item deleted)", StateFailed, func(f *downloadFixture) { f.e.must(f.e.m.DeleteItem(f.e.ctx, f.item)) }},
}

var downloadOps = []struct {
	name                  string
	op                    func(f *downloadFixture) error
	activeErr, terminal   Kind
	activeNext, afterTerm State // afterTerm "" = unchanged
}{
	{"keep_alive", func(f *downloadFixture) error {
		p := int64(10)
		return f.e.m.KeepAliveDownloadSession(f.e.ctx, f.d, &p)
	}, "", na, StateActive, ""},
	{"prepare", func(f *downloadFixture) error {
		info, err := f.e.m.PrepareDownloadFile(f.e.ctx, f.d, "a.txt", EndpointHTTPS)
		if err == nil && (info.Status != Prepared || info.DownloadEndpoint == nil) {
			return fmt.Errorf("prepare returned %+v", info)
		}
		return err
	}, "", na, StateActive, ""},
	{"OpenDownload", func(f *downloadFixture) error {
		r, err := f.e.m.OpenDownload(f.e.ctx, f.d, "a.txt")
		if err != nil {
			return err
		}
		defer r.Close()
		got, err := f.e.readAll(r)
		if err == nil && got != "aaa" {
			return fmt.Errorf("read %q", got)
		}
		return err
	}, "", na, StateActive, ""},
	{"cancel", func(f *downloadFixture) error { return f.e.m.CancelDownloadSession(f.e.ctx, f.d) }, "", na, StateCanceled, ""},
	{"fail", func(f *downloadFixture) error { return f.e.m.FailDownloadSession(f.e.ctx, f.d, "oops") }, "", na, StateFailed, ""},
	{"delete", func(f *downloadFixture) error { return f.e.m.DeleteDownloadSession(f.e.ctx, f.d) }, "", "", gone, gone},
	// Reading a session's file list is allowed in any state.
	{"get file", func(f *downloadFixture) error {
		_, err := f.e.m.GetDownloadFile(f.e.ctx, f.d, "a.txt")
		return err
	}, "", "", StateActive, ""},
	{"list files", func(f *downloadFixture) error {
		files, err := f.e.m.ListDownloadFiles(f.e.ctx, f.d)
		if err == nil && len(files) != 1 {
			return fmt.Errorf("listed %d files", len(files))
		}
		return err
	}, "", "", StateActive, ""},
}

func TestDownloadSessionTransitions(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	parent := e.t
	lib := e.library("lib")
	n := 0
	for _, st := range downloadStates {
		for _, op := range downloadOps {
			t.Run(st.name+"/"+op.name, func(t *testing.T) {
				e.t = t
				defer func() { e.t = parent }()
				n++
				f := &downloadFixture{e: e, item: e.item(lib, fmt.Sprintf("item%d", n))}
				e.commit(f.item, "a.txt", "aaa")
				f.d = e.downloadSession(f.item)
				st.reach(f)
				if got := e.downloadState(f.d); got != st.state {
					t.Fatalf("setup reached %s, want %s", got, st.state)
				}
				wantErr, wantNext := op.activeErr, op.activeNext
				if st.state != StateActive {
					wantErr, wantNext = op.terminal, op.afterTerm
					if wantNext == "" {
						wantNext = st.state
					}
				}
				wantKind(t, op.op(f), wantErr)
				got, err := e.m.GetDownloadSession(e.ctx, f.d)
				switch {
				case wantNext == gone:
					wantKind(t, err, KindNotFound)
				case err != nil:
					t.Fatal(err)
				case got.State != wantNext:
					t.Fatalf("state after %s: %s, want %s", op.name, got.State, wantNext)
				}
			})
		}
	}
}

// TestUnknownIDs: every method that names a library, item or session by an
// id nobody created, or by the id of an object of another kind, says
// NotFound.
func TestUnknownIDs(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	lib := e.library("lib")
	item := e.item(lib, "iso")
	e.commit(item, "a.txt", "aaa")
	realUpdate := e.updateSession(item)
	realDownload := e.downloadSession(item)
	m, ctx := e.m, e.ctx
	p := int64(1)

	for _, id := range []struct{ name, lib, item, update, download string }{
		{"random", uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()},
		{"empty", "", "", "", ""},
		// Ids of real objects of another kind.
		{"wrong kind", item, realUpdate, realDownload, realUpdate},
	} {
		calls := map[string]func() error{
			"GetLibrary":    func() error { _, err := m.GetLibrary(ctx, id.lib); return err },
			"UpdateLibrary": func() error { return m.UpdateLibrary(ctx, id.lib, LibraryUpdateSpec{}) },
			"DeleteLibrary": func() error { return m.DeleteLibrary(ctx, id.lib) },
			"CreateItem": func() error {
				_, err := m.CreateItem(ctx, ItemCreateSpec{LibraryID: id.lib, Name: "x"}, "")
				return err
			},
			"ListItems":   func() error { _, err := m.ListItems(ctx, id.lib); return err },
			"GetItem":     func() error { _, err := m.GetItem(ctx, id.item); return err },
			"UpdateItem":  func() error { return m.UpdateItem(ctx, id.item, ItemUpdateSpec{}) },
			"DeleteItem":  func() error { return m.DeleteItem(ctx, id.item) },
			"ListFiles":   func() error { _, err := m.ListFiles(ctx, id.item); return err },
			"GetFile":     func() error { _, err := m.GetFile(ctx, id.item, "a.txt"); return err },
			"ListStorage": func() error { _, err := m.ListStorage(ctx, id.item); return err },
			"CreateUpdateSession": func() error {
				_, err := m.CreateUpdateSession(ctx, UpdateSessionCreateSpec{LibraryItemID: id.item}, "")
				return err
			},
			"ActiveUpdateSession": func() error { _, err := m.ActiveUpdateSession(ctx, id.item); return err },
			"ListUpdateSessions": func() error {
				if id.item == "" {
					return ErrNotFound // "" means no filter
				}
				_, err := m.ListUpdateSessions(ctx, id.item)
				return err
			},
			"GetUpdateSession":    func() error { _, err := m.GetUpdateSession(ctx, id.update); return err },
			"UpdateUpdateSession": func() error { return m.UpdateUpdateSession(ctx, id.update, UpdateSessionUpdateSpec{}) },
			"KeepAliveUpdateSession": func() error {
				return m.KeepAliveUpdateSession(ctx, id.update, &p)
			},
			"CompleteUpdateSession": func() error { return m.CompleteUpdateSession(ctx, id.update) },
			"CancelUpdateSession":   func() error { return m.CancelUpdateSession(ctx, id.update) },
			"FailUpdateSession":     func() error { return m.FailUpdateSession(ctx, id.update, "x") },
			"DeleteUpdateSession":   func() error { return m.DeleteUpdateSession(ctx, id.update) },
			"AddFile": func() error {
				_, err := m.AddFile(ctx, id.update, FileAddSpec{Name: "b", SourceType: SourcePush})
				return err
			},
			"GetSessionFile":    func() error { _, err := m.GetSessionFile(ctx, id.update, "a.txt"); return err },
			"ListSessionFiles":  func() error { _, err := m.ListSessionFiles(ctx, id.update); return err },
			"RemoveSessionFile": func() error { return m.RemoveSessionFile(ctx, id.update, "a.txt") },
			"ValidateUpdateSession": func() error {
				_, err := m.ValidateUpdateSession(ctx, id.update)
				return err
			},
			"OpenUpload": func() error {
				_, err := m.OpenUpload(ctx, id.update, "a.txt", UploadOptions{})
				return err
			},
			"CreateDownloadSession": func() error {
				_, err := m.CreateDownloadSession(ctx, DownloadSessionCreateSpec{LibraryItemID: id.item}, "")
				return err
			},
			"ListDownloadSessions": func() error {
				if id.item == "" {
					return ErrNotFound
				}
				_, err := m.ListDownloadSessions(ctx, id.item)
				return err
			},
			"GetDownloadSession": func() error { _, err := m.GetDownloadSession(ctx, id.download); return err },
			"KeepAliveDownloadSession": func() error {
				return m.KeepAliveDownloadSession(ctx, id.download, &p)
			},
			"CancelDownloadSession": func() error { return m.CancelDownloadSession(ctx, id.download) },
			"FailDownloadSession":   func() error { return m.FailDownloadSession(ctx, id.download, "x") },
			"DeleteDownloadSession": func() error { return m.DeleteDownloadSession(ctx, id.download) },
			"ListDownloadFiles":     func() error { _, err := m.ListDownloadFiles(ctx, id.download); return err },
			"GetDownloadFile":       func() error { _, err := m.GetDownloadFile(ctx, id.download, "a.txt"); return err },
			"PrepareDownloadFile": func() error {
				_, err := m.PrepareDownloadFile(ctx, id.download, "a.txt", "")
				return err
			},
			"OpenDownload": func() error { _, err := m.OpenDownload(ctx, id.download, "a.txt"); return err },
		}
		for name, call := range calls {
			t.Run(id.name+"/"+name, func(t *testing.T) { wantKind(t, call(), KindNotFound) })
		}
	}
	// Nothing above touched the real objects.
	if got := e.updateState(realUpdate); got != StateActive {
		t.Errorf("update session is %s", got)
	}
	if got := e.downloadState(realDownload); got != StateActive {
		t.Errorf("download session is %s", got)
	}
}

// TestUnknownFileNames: inside a known session an unknown file name is an
// InvalidArgument, not NotFound (spec §7.5, §8.4, §12 #13, #34).
func TestUnknownFileNames(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "iso")
	e.commit(item, "a.txt", "aaa")
	s := e.updateSession(item)
	d := e.downloadSession(item)
	m, ctx := e.m, e.ctx
	e.must(m.RemoveSessionFile(ctx, s, "a.txt"))
	for name, call := range map[string]func() error{
		"GetSessionFile(unknown)": func() error { _, err := m.GetSessionFile(ctx, s, "nope"); return err },
		"GetSessionFile(removed)": func() error { _, err := m.GetSessionFile(ctx, s, "a.txt"); return err },
		"RemoveSessionFile(unknown)": func() error {
			return m.RemoveSessionFile(ctx, s, "nope")
		},
		"RemoveSessionFile(removed)": func() error {
			return m.RemoveSessionFile(ctx, s, "a.txt")
		},
		"OpenUpload(not added)": func() error { _, err := m.OpenUpload(ctx, s, "nope", UploadOptions{}); return err },
		"OpenUpload(removed)":   func() error { _, err := m.OpenUpload(ctx, s, "a.txt", UploadOptions{}); return err },
		"GetDownloadFile":       func() error { _, err := m.GetDownloadFile(ctx, d, "nope"); return err },
		"PrepareDownloadFile":   func() error { _, err := m.PrepareDownloadFile(ctx, d, "nope", ""); return err },
		"OpenDownload":          func() error { _, err := m.OpenDownload(ctx, d, "nope"); return err },
	} {
		t.Run(name, func(t *testing.T) { wantKind(t, call(), KindInvalidArgument) })
	}
	if _, err := m.GetFile(ctx, item, "nope"); KindOf(err) != KindNotFound {
		t.Errorf("GetFile(unknown) = %v, want NotFound", err)
	}
}

// File statuses move only along their tables; anything else is a bug of
// clfs, refused as a server error and leaving the record as it was.
func TestFileStatusMoves(t *testing.T) {
	f := &meta.UpdateSessionFile{Name: "a"}
	for _, to := range []TransferStatus{TransferWaiting, TransferTransferring, TransferError, TransferTransferring, TransferReady, TransferTransferring} {
		if err := setTransferStatus(f, to); err != nil {
			t.Fatalf("-> %s: %v", to, err)
		}
	}
	for _, to := range []TransferStatus{TransferWaiting, TransferValidating} {
		err := setTransferStatus(f, to)
		wantKind(t, err, KindError)
		if f.Status != string(TransferTransferring) {
			t.Fatalf("a refused move changed the status to %s", f.Status)
		}
	}
	if err := setTransferStatus(&meta.UpdateSessionFile{Name: "b"}, TransferReady); err == nil {
		t.Error("a new file became READY without a transfer")
	}

	d := &meta.DownloadSessionFile{Name: "a"}
	for _, to := range []PrepareStatus{PrepareUnprepared, Prepared, Prepared} {
		if err := setPrepareStatus(d, to); err != nil {
			t.Fatalf("-> %s: %v", to, err)
		}
	}
	wantKind(t, setPrepareStatus(d, PrepareUnprepared), KindError)
}
