package sessionmgr

import (
	"testing"
	"time"
)

// The mount's read session of an item is replaced when a reader opens
// after a commit; the replaced one, with nobody reading through it, is
// deleted before the open returns. It was deleted on a goroutine of its
// own, which could outlive Close and panic on the closed catalog.
func TestReplacedReadSessionIsDeletedBeforeOpenReturns(t *testing.T) {
	for range 5 {
		e := newTestEnv(t)
		it := e.item(e.library("lib"), "item")
		e.commit(it, "f", "v1")
		r1, err := e.m.OpenFileReader(e.ctx, it, "f")
		e.must(err)
		e.commit(it, "f", "v2")
		r2, err := e.m.OpenFileReader(e.ctx, it, "f")
		e.must(err)
		e.must(r1.Close()) // the last reader of the replaced session
		got, err := e.readAll(r2.DownloadReader)
		e.must(err)
		if got != "v2" {
			t.Fatalf("read %q, want v2", got)
		}
		if ds := e.downloadSessions(it); len(ds) != 1 {
			t.Fatalf("%d download sessions with one reader open, want 1 (the replaced one deleted): %+v", len(ds), ds)
		}
		e.must(r2.Close())
		e.close() // nothing may still be running on the catalog
	}
}

// A read session ends with its last reader, after a short linger:
// `clfs session ls` shows the mount's download sessions only while
// something reads through them.
func TestReadSessionEndsWithItsLastReader(t *testing.T) {
	e := newTestEnv(t)
	it := e.item(e.library("lib"), "item")
	e.commit(it, "f", "v1")
	e.commit(it, "g", "v1")
	r1, err := e.m.OpenFileReader(e.ctx, it, "f")
	e.must(err)
	r2, err := e.m.OpenFileReader(e.ctx, it, "g")
	e.must(err)
	if ds := e.downloadSessions(it); len(ds) != 1 {
		t.Fatalf("%d download sessions with two readers of one content version, want 1: %+v", len(ds), ds)
	}
	e.must(r1.Close())
	if ds := e.downloadSessions(it); len(ds) != 1 {
		t.Fatalf("%d download sessions with one reader left, want 1: %+v", len(ds), ds)
	}
	e.must(r2.Close())
	// It lingers a moment, for the next file of a tar or cp -r.
	r2, err = e.m.OpenFileReader(e.ctx, it, "g")
	e.must(err)
	e.must(r2.Close())
	if ds := e.downloadSessions(it); len(ds) != 1 {
		t.Fatalf("%d download sessions right after the last reader closed, want the same 1: %+v", len(ds), ds)
	}
	e.clock.Advance(readLinger - time.Millisecond)
	if waiting := e.m.endIdleReadSessions(readLinger); waiting != 1 || len(e.downloadSessions(it)) != 1 {
		t.Fatalf("before the linger ended: %d waiting, %d sessions; want 1 and 1", waiting, len(e.downloadSessions(it)))
	}
	e.clock.Advance(time.Millisecond)
	if waiting := e.m.endIdleReadSessions(readLinger); waiting != 0 {
		t.Fatalf("%d read sessions still waiting after the linger", waiting)
	}
	if ds := e.downloadSessions(it); len(ds) != 0 {
		t.Fatalf("%d download sessions once the last reader closed and the linger passed, want 0: %+v", len(ds), ds)
	}
	// And a new reader gets a session again.
	r3, err := e.m.OpenFileReader(e.ctx, it, "f")
	e.must(err)
	if got, err := e.readAll(r3.DownloadReader); err != nil || got != "v1" {
		t.Fatalf("read %q, %v; want v1", got, err)
	}
	e.must(r3.Close())
}

func (e *testEnv) downloadSessions(item string) []DownloadSession {
	e.t.Helper()
	ds, err := e.m.ListDownloadSessions(e.ctx, item)
	e.must(err)
	return ds
}
