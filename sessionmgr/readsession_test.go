package sessionmgr

import "testing"

// The mount's read session of an item is replaced when a reader opens
// after a commit; the replaced one, with nobody reading through it, is
// deleted before the open returns. It was deleted on a goroutine of its
// own, which could outlive Close and panic on the closed catalog.
func TestReplacedReadSessionIsDeletedBeforeOpenReturns(t *testing.T) {
	for range 5 {
		e := newTestEnv(t)
		it := e.item(e.library("lib"), "item")
		e.commit(it, "f", "v1")
		r, err := e.m.OpenFileReader(e.ctx, it, "f")
		e.must(err)
		e.must(r.Close())
		e.commit(it, "f", "v2")
		r, err = e.m.OpenFileReader(e.ctx, it, "f")
		e.must(err)
		got, err := e.readAll(r.DownloadReader)
		e.must(err)
		if got != "v2" {
			t.Fatalf("read %q, want v2", got)
		}
		e.must(r.Close())
		ds, err := e.m.ListDownloadSessions(e.ctx, it)
		e.must(err)
		if len(ds) != 1 {
			t.Fatalf("%d download sessions after the second open, want 1 (the replaced one deleted): %+v", len(ds), ds)
		}
		e.close() // nothing may still be running on the catalog
	}
}
