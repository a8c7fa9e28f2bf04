package sessionmgr

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// Helpers shared by the table, transcript, data-plane and recovery tests.
// Every test gets its own home in t.TempDir() with a real Badger catalog,
// a FakeClock and no background reaper: expiry happens only when a test
// calls ExpireDue after moving the clock.

// testEpoch is where every FakeClock starts; transcripts print times
// relative to it.
var testEpoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

const testTimeout = 5 * time.Minute

type testEnv struct {
	t     testing.TB
	ctx   context.Context
	home  string
	clock *FakeClock
	m     *Manager

	inlineLimit int64
	readOnly    bool   // the next open is read-only
	meta        string // catalog URL; "" is the home's Badger
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	return newTestEnvInline(t, 0)
}

// newTestEnvInline is newTestEnv with an InlineLimit; negative keeps every
// file in blob files, for tests about staging and blob files themselves.
func newTestEnvInline(t testing.TB, inlineLimit int64) *testEnv {
	t.Helper()
	e := &testEnv{t: t, ctx: context.Background(), home: t.TempDir(), clock: NewFakeClock(testEpoch), inlineLimit: inlineLimit, meta: testMetaURL(t)}
	e.open()
	t.Cleanup(func() {
		if e.m != nil {
			e.m.Close()
		}
	})
	return e
}

// open opens the manager on the env's home (again, after close).
func (e *testEnv) open() {
	e.t.Helper()
	m, err := Open(Options{
		Home: e.home, Meta: e.meta, Clock: e.clock, ReapInterval: -1, SessionTimeout: testTimeout, InlineLimit: e.inlineLimit,
		ReadOnly: e.readOnly,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.m = m
}

// testMetaURL is the catalog of one test's home: with CLFS_TEST_META set
// to etcd://HOST:PORT[,...], a fresh prefix on that cluster (the session
// manager's tests on the etcd engine); else "", the home's Badger.
func testMetaURL(t testing.TB) string {
	base := os.Getenv("CLFS_TEST_META")
	if base == "" {
		return ""
	}
	return freshCatalog(t, strings.TrimSuffix(base, "/"), "sessionmgr")
}

// freshCatalog is a catalog under a new random prefix of base
// (etcd://HOST:PORT[,...]), dropped when the test ends: call it before
// opening the managers that use it, so that it is dropped after they
// are closed.
func freshCatalog(t testing.TB, base, what string) string {
	var b [6]byte
	rand.Read(b[:])
	url := base + "/clfs-test/" + what + "-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		if err := DropCatalog(context.Background(), url); err != nil {
			t.Errorf("drop the test's catalog %s: %v", url, err)
		}
	})
	return url
}

func (e *testEnv) close() {
	e.t.Helper()
	if err := e.m.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.m = nil
}

func (e *testEnv) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) library(name string) string {
	e.t.Helper()
	id, err := e.m.CreateLibrary(e.ctx, LibraryCreateSpec{Name: name}, "")
	e.must(err)
	return id
}

func (e *testEnv) item(lib, name string) string {
	e.t.Helper()
	id, err := e.m.CreateItem(e.ctx, ItemCreateSpec{LibraryID: lib, Name: name}, "")
	e.must(err)
	return id
}

func (e *testEnv) updateSession(item string) string {
	e.t.Helper()
	id, err := e.m.CreateUpdateSession(e.ctx, UpdateSessionCreateSpec{LibraryItemID: item}, "")
	e.must(err)
	return id
}

func (e *testEnv) downloadSession(item string) string {
	e.t.Helper()
	id, err := e.m.CreateDownloadSession(e.ctx, DownloadSessionCreateSpec{LibraryItemID: item}, "")
	e.must(err)
	return id
}

// upload adds name to the session and uploads data in one go; the file
// ends READY.
func (e *testEnv) upload(session, name, data string) {
	e.t.Helper()
	_, err := e.m.AddFile(e.ctx, session, FileAddSpec{Name: name, SourceType: SourcePush})
	e.must(err)
	sf, err := e.m.OpenUpload(e.ctx, session, name, UploadOptions{})
	e.must(err)
	_, err = sf.WriteAt([]byte(data), 0)
	e.must(err)
	_, err = sf.Finish(e.ctx)
	e.must(err)
	e.must(sf.Close())
}

// commit makes the files (name, data, name, data, ...) part of the item
// through one update session.
func (e *testEnv) commit(item string, nameData ...string) {
	e.t.Helper()
	s := e.updateSession(item)
	for i := 0; i+1 < len(nameData); i += 2 {
		e.upload(s, nameData[i], nameData[i+1])
	}
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
}

func (e *testEnv) updateState(id string) State {
	e.t.Helper()
	s, err := e.m.GetUpdateSession(e.ctx, id)
	e.must(err)
	return s.State
}

func (e *testEnv) downloadState(id string) State {
	e.t.Helper()
	s, err := e.m.GetDownloadSession(e.ctx, id)
	e.must(err)
	return s.State
}

func (e *testEnv) readAll(r *DownloadReader) (string, error) {
	b, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	return string(b), err
}

// wantKind fails unless err is an API error of kind want ("" = no error),
// checked both with errors.Is on the sentinel and with KindOf.
func wantKind(t testing.TB, err error, want Kind) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want %s", want)
	}
	if got := KindOf(err); got != want {
		t.Fatalf("got %s (%v), want %s", got, err, want)
	}
	if !errors.Is(err, sentinelOf(want)) {
		t.Fatalf("errors.Is(%v, Err%s) = false", err, want)
	}
}

func sentinelOf(k Kind) error {
	for _, s := range []*Error{
		ErrNotFound, ErrInvalidArgument, ErrNotAllowedInCurrentState, ErrAlreadyExists,
		ErrResourceBusy, ErrInvalidElementType, ErrResourceInaccessible, ErrConcurrentChange,
		ErrUnsupported,
	} {
		if s.Kind == k {
			return s
		}
	}
	return &Error{Kind: k}
}
