package sessionmgr

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Fuzz targets of the session manager. Their seed corpora (the f.Add calls
// and testdata/fuzz/FuzzX/) run as ordinary tests in go test ./...;
// testdata/fuzz.sh at the repository root fuzzes each for a bounded time.

// FuzzValidateName: a name is accepted exactly when it follows the rules
// (ARCHITECTURE.md "Namespace"), and an accepted name is one path
// component: joined to any directory it names a direct child of that
// directory, so no accepted name can reach outside the storage directory
// or the mount.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{
		"", ".", "..", "...", "a", "a/b", "/", "../etc", "a\x00b", "\x00", "\xff\xfe",
		"ok\xc3", `a\b`, "..\\..", " ", ".hidden", "é", strings.Repeat("x", 255),
		strings.Repeat("x", 256), strings.Repeat("é", 127) + "x", strings.Repeat("é", 128),
		"%2e%2e", "a\nb", "\u202e", "con", "\ufeff",
	} {
		f.Add(s)
	}
	root := filepath.Join(string(filepath.Separator), "home", "clfs", "storage")
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName("file", name)
		want := name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00") &&
			len(name) <= maxNameBytes && utf8.ValidString(name)
		if (err == nil) != want {
			t.Fatalf("ValidateName(%q) = %v, want accepted %v", name, err, want)
		}
		if err != nil {
			if KindOf(err) != KindInvalidArgument {
				t.Fatalf("ValidateName(%q): kind %s, want InvalidArgument", name, KindOf(err))
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("ValidateName(%q): message is not UTF-8: %q", name, err.Error())
			}
			return
		}
		p := filepath.Join(root, name)
		if filepath.Dir(p) != root || filepath.Base(p) != name {
			t.Fatalf("accepted name %q joins to %q, outside %s", name, p, root)
		}
		// Item names carry the same rules, plus their character limit.
		itemErr := validateItemName(name)
		if (itemErr == nil) != (utf8.RuneCountInString(name) <= maxItemNameChars) {
			t.Fatalf("validateItemName(%q) = %v", name, itemErr)
		}
	})
}

// ---- session transition sequences against a model

// The model is the state tables of spec §6.3 and §8.2 as the tests read
// them, written out independently of state.go: one item, update and
// download sessions on it, the fake clock moved forward and the reaper
// run on demand. Each input byte is one operation; the manager's answer
// (error kind, state after) is compared with the model's after each.

type modelSession struct {
	id       string
	download bool
	state    State // gone once deleted
	exp      time.Time
	files    map[string]bool // update sessions: added file -> uploaded (READY)
}

type sessionModel struct {
	e          *testEnv
	t          *testing.T
	item       string
	itemGone   bool
	sessions   []*modelSession
	storage    string
	transcript []string
}

func (s *sessionModel) now() time.Time { return s.e.clock.Now() }

func (s *sessionModel) extend(ms *modelSession) {
	if at := s.now().Add(testTimeout); at.After(ms.exp) {
		ms.exp = at
	}
}

func (s *sessionModel) end(ms *modelSession, to State) {
	ms.state = to
	ms.exp = s.now().Add(testTimeout)
}

// activeUpdate is the item's active update session, if any.
func (s *sessionModel) activeUpdate() *modelSession {
	for _, ms := range s.sessions {
		if !ms.download && ms.state == StateActive {
			return ms
		}
	}
	return nil
}

// pick is the session an operation acts on: the k-th one created of its
// kind, or nil when there is none.
func (s *sessionModel) pick(download bool, k int) *modelSession {
	var of []*modelSession
	for _, ms := range s.sessions {
		if ms.download == download {
			of = append(of, ms)
		}
	}
	if len(of) == 0 {
		return nil
	}
	return of[k%len(of)]
}

// want is the error kind the model expects of an operation on ms that is
// allowed from the given states: NotFound once it is gone.
func want(ms *modelSession, allowed ...State) Kind {
	if ms.state == gone {
		return KindNotFound
	}
	for _, st := range allowed {
		if ms.state == st {
			return ""
		}
	}
	return KindNotAllowedInCurrentState
}

var fileNames = []string{"a.iso", "b.ovf"}

const numSessionOps = 16

// step runs the operation coded by b and checks the manager against the
// model.
func (s *sessionModel) step(b byte) {
	e, t := s.e, s.t
	op, arg := int(b)%numSessionOps, int(b)/numSessionOps
	check := func(what string, err error, kind Kind) {
		t.Helper()
		s.transcript = append(s.transcript, fmt.Sprintf("%s -> %v", what, err))
		if KindOf(err) != kind && !(kind == "" && err == nil) {
			t.Fatalf("%s: got %v (kind %s), want kind %q\n%s", what, err, KindOf(err), kind, strings.Join(s.transcript, "\n"))
		}
	}
	up, down := s.pick(false, arg), s.pick(true, arg)
	switch op {
	case 0: // create an update session
		id, err := e.m.CreateUpdateSession(e.ctx, UpdateSessionCreateSpec{LibraryItemID: s.item}, "")
		switch {
		case s.itemGone:
			check("create update", err, KindNotFound)
		case s.activeUpdate() != nil:
			check("create update", err, KindResourceBusy)
		default:
			check("create update", err, "")
			s.sessions = append(s.sessions, &modelSession{id: id, state: StateActive, exp: s.now().Add(testTimeout), files: map[string]bool{}})
		}
	case 1: // create a download session
		id, err := e.m.CreateDownloadSession(e.ctx, DownloadSessionCreateSpec{LibraryItemID: s.item}, "")
		if s.itemGone {
			check("create download", err, KindNotFound)
			return
		}
		check("create download", err, "")
		s.sessions = append(s.sessions, &modelSession{id: id, download: true, state: StateActive, exp: s.now().Add(testTimeout)})
	case 2, 3: // keep-alive, with a progress that may be out of range
		ms := up
		if op == 3 {
			ms = down
		}
		if ms == nil {
			return
		}
		p := int64(arg*9) - 10 // -10 .. 134
		var err error
		if ms.download {
			err = e.m.KeepAliveDownloadSession(e.ctx, ms.id, &p)
		} else {
			err = e.m.KeepAliveUpdateSession(e.ctx, ms.id, &p)
		}
		if p < 0 || p > 100 {
			check(fmt.Sprintf("keep-alive %s progress %d", ms.id, p), err, KindInvalidArgument)
			return
		}
		k := want(ms, StateActive)
		check("keep-alive "+ms.id, err, k)
		if k == "" {
			s.extend(ms)
		}
	case 4: // add a file
		if up == nil {
			return
		}
		name := fileNames[arg%len(fileNames)]
		_, err := e.m.AddFile(e.ctx, up.id, FileAddSpec{Name: name, SourceType: SourcePush})
		k := want(up, StateActive)
		check("add "+name+" to "+up.id, err, k)
		if k == "" {
			up.files[name] = false // a re-add starts over
			s.extend(up)
		}
	case 5: // upload a file's bytes
		if up == nil {
			return
		}
		name := fileNames[arg%len(fileNames)]
		sf, err := e.m.OpenUpload(e.ctx, up.id, name, UploadOptions{})
		k := want(up, StateActive)
		if _, added := up.files[name]; k == "" && !added {
			k = KindInvalidArgument
		}
		check("open upload "+name+" of "+up.id, err, k)
		if err != nil {
			return
		}
		_, err = sf.WriteAt([]byte(name+" content"), 0)
		check("write "+name, err, "")
		_, err = sf.Finish(e.ctx)
		check("finish "+name, err, "")
		check("close "+name, sf.Close(), "")
		up.files[name] = true
		s.extend(up)
	case 6: // complete
		if up == nil {
			return
		}
		err := e.m.CompleteUpdateSession(e.ctx, up.id)
		k := want(up, StateActive)
		if k == "" {
			for _, ready := range up.files {
				if !ready {
					k = KindNotAllowedInCurrentState
				}
			}
		}
		check("complete "+up.id, err, k)
		if err == nil {
			s.end(up, StateDone)
		}
	case 7, 8: // cancel
		ms := up
		if op == 8 {
			ms = down
		}
		if ms == nil {
			return
		}
		var err error
		if ms.download {
			err = e.m.CancelDownloadSession(e.ctx, ms.id)
		} else {
			err = e.m.CancelUpdateSession(e.ctx, ms.id)
		}
		k := want(ms, StateActive)
		check("cancel "+ms.id, err, k)
		if k == "" {
			s.end(ms, StateCanceled)
		}
	case 9, 10: // fail, sometimes without the message fail requires
		ms := up
		if op == 10 {
			ms = down
		}
		if ms == nil {
			return
		}
		msg := "client gave up"
		if arg%4 == 0 {
			msg = ""
		}
		var err error
		if ms.download {
			err = e.m.FailDownloadSession(e.ctx, ms.id, msg)
		} else {
			err = e.m.FailUpdateSession(e.ctx, ms.id, msg)
		}
		if msg == "" {
			check("fail "+ms.id+" without a message", err, KindInvalidArgument)
			return
		}
		k := want(ms, StateActive)
		check("fail "+ms.id, err, k)
		if k == "" {
			s.end(ms, StateFailed)
		}
	case 11, 12: // delete: update sessions when terminal, downloads always
		ms := up
		if op == 12 {
			ms = down
		}
		if ms == nil {
			return
		}
		var err error
		var k Kind
		if ms.download {
			err = e.m.DeleteDownloadSession(e.ctx, ms.id)
			k = want(ms, StateActive, StateDone, StateFailed, StateCanceled)
		} else {
			err = e.m.DeleteUpdateSession(e.ctx, ms.id)
			k = want(ms, StateDone, StateFailed, StateCanceled)
		}
		check("delete "+ms.id, err, k)
		if k == "" {
			ms.state = gone
		}
	case 13: // prepare a file of a download session
		if down == nil {
			return
		}
		_, err := e.m.PrepareDownloadFile(e.ctx, down.id, "base.txt", "")
		k := want(down, StateActive)
		check("prepare base.txt of "+down.id, err, k)
		if k == "" {
			s.extend(down)
		}
	case 14: // time passes, the reaper runs
		d := []time.Duration{time.Second, testTimeout / 2, testTimeout, testTimeout + time.Second}[arg%4]
		e.clock.Advance(d)
		_, err := e.m.ExpireDue(e.ctx)
		check(fmt.Sprintf("advance %v and expire", d), err, "")
		now := s.now()
		for _, ms := range s.sessions {
			switch {
			case ms.state == gone || ms.exp.After(now):
			case ms.state == StateActive:
				s.end(ms, StateCanceled)
			default:
				ms.state = gone
			}
		}
	case 15: // the item is deleted under its sessions (rarely: it ends the story)
		if arg%8 != 7 || s.itemGone {
			return
		}
		err := e.m.DeleteItem(e.ctx, s.item)
		check("delete item", err, "")
		s.itemGone = true
		for _, ms := range s.sessions {
			if ms.state == StateActive {
				s.end(ms, StateFailed)
			}
		}
	}
	s.verify()
}

// verify compares every session's state with the model's, and checks that
// no session that left ACTIVE kept its staging.
func (s *sessionModel) verify() {
	e, t := s.e, s.t
	t.Helper()
	for _, ms := range s.sessions {
		var st State
		var err error
		if ms.download {
			var d *DownloadSession
			if d, err = e.m.GetDownloadSession(e.ctx, ms.id); err == nil {
				st = d.State
			}
		} else {
			var u *UpdateSession
			if u, err = e.m.GetUpdateSession(e.ctx, ms.id); err == nil {
				st = u.State
			}
		}
		if ms.state == gone {
			if KindOf(err) != KindNotFound {
				t.Fatalf("session %s should be gone: %s, %v\n%s", ms.id, st, err, strings.Join(s.transcript, "\n"))
			}
			continue
		}
		if err != nil || st != ms.state {
			t.Fatalf("session %s: %s, %v; the model says %s\n%s", ms.id, st, err, ms.state, strings.Join(s.transcript, "\n"))
		}
		if !ms.download && ms.state != StateActive {
			if _, err := os.Stat(stagingDir(s.storage, ms.id)); err == nil {
				t.Fatalf("session %s is %s and still has its staging directory\n%s", ms.id, ms.state, strings.Join(s.transcript, "\n"))
			}
		}
	}
}

// FuzzSessionTransitions runs operation sequences on real update and
// download sessions (one Badger catalog per fuzzing process, a fresh item
// per input) against the model above.
func FuzzSessionTransitions(f *testing.F) {
	// op(code, arg) is the byte of one operation (see step).
	op := func(code, arg int) byte { return byte(code + numSessionOps*arg) }
	const (
		create, createDL, keep, keepDL, add, upload, complete, cancel, cancelDL = 0, 1, 2, 3, 4, 5, 6, 7, 8
		fail, failDL, del, delDL, prepare, advance, deleteItem                  = 9, 10, 11, 12, 13, 14, 15
	)
	for _, seq := range [][]byte{
		{op(create, 0), op(add, 0), op(upload, 0), op(complete, 0), op(del, 0)},
		// complete before the upload: refused, then done
		{op(create, 0), op(add, 0), op(complete, 0), op(upload, 0), op(complete, 0)},
		// busy; cancel; create again; fail; delete twice
		{op(create, 0), op(create, 0), op(cancel, 0), op(create, 0), op(fail, 1), op(del, 0), op(del, 0), op(del, 1), op(del, 1)},
		// expire ACTIVE to CANCELED, then gone; keep-alive refused in between
		{op(create, 0), op(add, 0), op(advance, 3), op(keep, 2), op(complete, 0), op(advance, 3), op(keep, 2)},
		// keep-alive pushes expiry forward
		{op(create, 0), op(advance, 1), op(keep, 2), op(advance, 1), op(advance, 1), op(add, 1), op(upload, 1), op(complete, 0)},
		// download: prepare, cancel, prepare refused, delete twice
		{op(createDL, 0), op(prepare, 0), op(keepDL, 5), op(cancelDL, 0), op(prepare, 0), op(delDL, 0), op(delDL, 0)},
		// fail without, then with a message
		{op(createDL, 0), op(failDL, 0), op(failDL, 1), op(keepDL, 3), op(delDL, 0)},
		// the item deleted under both kinds
		{op(createDL, 0), op(create, 0), op(add, 0), op(upload, 0), op(deleteItem, 7), op(create, 0), op(createDL, 0), op(complete, 0), op(del, 0), op(delDL, 0)},
		// progress out of range, both ways
		{op(create, 0), op(keep, 15), op(keep, 1), op(createDL, 0), op(keepDL, 12), op(keepDL, 0)},
		// a re-add discards the upload
		{op(create, 0), op(add, 0), op(add, 1), op(upload, 0), op(add, 0), op(complete, 0), op(upload, 1), op(upload, 0), op(complete, 0)},
		// download expiry: ACTIVE, CANCELED, gone
		{op(createDL, 0), op(advance, 2), op(advance, 1), op(cancelDL, 0), op(advance, 3), op(delDL, 0), op(prepare, 0)},
		// many sessions in turn
		{op(create, 0), op(complete, 0), op(create, 0), op(cancel, 1), op(create, 0), op(fail, 2), op(createDL, 0), op(createDL, 0), op(cancelDL, 1), op(advance, 3), op(advance, 3)},
	} {
		f.Add(seq)
	}
	e := newTestEnv(f)
	lib := e.library("fuzz")
	n := 0
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		n++
		e.t = t
		item := e.item(lib, fmt.Sprintf("item-%d", n))
		e.commit(item, "base.txt", "base")
		s := &sessionModel{e: e, t: t, item: item, storage: filepath.Join(e.home, "storage")}
		for _, b := range ops {
			s.step(b)
		}
		// Whatever happened, two timeouts later nothing of it is left.
		for range 2 {
			e.clock.Advance(testTimeout + time.Second)
			if _, err := e.m.ExpireDue(e.ctx); err != nil {
				t.Fatal(err)
			}
		}
		for _, ms := range s.sessions {
			ms.state = gone
		}
		s.verify()
		if entries, err := os.ReadDir(filepath.Join(s.storage, "staging")); err == nil {
			for _, de := range entries {
				for _, ms := range s.sessions {
					if de.Name() == ms.id {
						t.Fatalf("staging of session %s left after it expired", ms.id)
					}
				}
			}
		}
	})
}
