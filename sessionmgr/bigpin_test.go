package sessionmgr

import (
	"fmt"
	"testing"
)

// A download session over an item of more files than one transaction
// pins (on etcd its create failed with ErrTooLarge at about 60): it pins
// them all, serves them as they were when it was made, and once ended
// its pins are dropped by the sweep; no blob leaks, fsck is clean.
func TestDownloadSessionManyFiles(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "big")
	e.fill(item, "f", 100)
	seen := 0
	e.m.afterBuildBatch = func() {
		seen++
		if ds := e.downloadSessions(item); len(ds) != 0 {
			t.Errorf("a session being pinned is listed: %+v", ds)
		}
	}
	s := e.downloadSession(item)
	e.m.afterBuildBatch = nil
	if seen < 4 {
		t.Errorf("pinned in %d transactions; want several", seen)
	}
	files, err := e.m.ListDownloadFiles(e.ctx, s)
	e.must(err)
	if len(files) != 100 {
		t.Fatalf("%d files pinned, want 100", len(files))
	}
	e.commit(item, "f042", "replaced")
	r, err := e.m.OpenDownload(e.ctx, s, "f042")
	e.must(err)
	if got, err := e.readAll(r); got != "content of f 42" || err != nil {
		t.Errorf("a pinned file replaced since reads %q, %v", got, err)
	}
	e.must(r.Close())

	e.must(e.m.CancelDownloadSession(e.ctx, s))
	if got := e.downloadState(s); got != StateCanceled {
		t.Errorf("session: %s, want CANCELED", got)
	}
	e.checkStorage() // before the sweep: the pins still count
	e.must(e.m.sweepHidden(e.ctx))
	if h := e.hidden(); len(h) != 0 {
		t.Errorf("left hidden: %v", h)
	}
	e.checkStorage()
	e.must(e.m.DeleteDownloadSession(e.ctx, s))
	e.checkStorage()
}

// A session deleted while it still holds many pins: its pins outlive its
// record until the sweep drops them.
func TestDownloadSessionManyFilesDeleted(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "big")
	e.fill(item, "f", 60)
	s := e.downloadSession(item)
	e.commit(item, "f001", "replaced") // the old blob: only the pin holds it
	e.must(e.m.DeleteDownloadSession(e.ctx, s))
	if _, err := e.m.GetDownloadSession(e.ctx, s); KindOf(err) != KindNotFound {
		t.Errorf("deleted session: %v, want not found", err)
	}
	e.checkStorage()
	e.must(e.m.sweepHidden(e.ctx))
	e.checkStorage()
}

// The item changing while its files are pinned starts the pinning over:
// the session serves the item as it is after the change.
func TestDownloadSessionManyFilesItemChanges(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "big")
	e.fill(item, "f", 60)
	batches := 0
	e.m.afterBuildBatch = func() {
		if batches++; batches == 1 {
			e.commit(item, "f050", "changed meanwhile")
		}
	}
	s := e.downloadSession(item)
	e.m.afterBuildBatch = nil
	info, err := e.m.GetDownloadSession(e.ctx, s)
	e.must(err)
	it, err := e.m.GetItem(e.ctx, item)
	e.must(err)
	if info.LibraryItemContentVersion != it.ContentVersion {
		t.Errorf("session of content version %s, item at %s", info.LibraryItemContentVersion, it.ContentVersion)
	}
	r, err := e.m.OpenDownload(e.ctx, s, "f050")
	e.must(err)
	if got, _ := e.readAll(r); got != "changed meanwhile" {
		t.Errorf("f050 reads %q", got)
	}
	e.must(r.Close())
	e.must(e.m.DeleteDownloadSession(e.ctx, s))
	e.must(e.m.sweepHidden(e.ctx))
	if h := e.hidden(); len(h) != 0 {
		t.Errorf("left hidden: %v", h)
	}
	e.checkStorage()
}

// The mount reads an item through one download session that pins each
// file as it is opened (tar c of a large item pins them all); ending it
// drops every pin (on etcd it failed with ErrTooLarge beyond about 60 and
// leaked them).
func TestReadSessionManyFiles(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "big")
	e.fill(item, "f", 80)
	for i := range 80 {
		r, err := e.m.OpenFileReader(e.ctx, item, fmt.Sprintf("f%03d", i))
		e.must(err)
		e.must(r.Close())
	}
	if ds := e.downloadSessions(item); len(ds) != 1 {
		t.Fatalf("%d read sessions, want 1", len(ds))
	}
	e.clock.Advance(readLinger)
	if waiting := e.m.endIdleReadSessions(readLinger); waiting != 0 {
		t.Fatalf("%d read sessions still waiting after the linger", waiting)
	}
	if ds := e.downloadSessions(item); len(ds) != 0 {
		t.Fatalf("read session left: %+v", ds)
	}
	e.must(e.m.sweepHidden(e.ctx))
	e.checkStorage()
}
