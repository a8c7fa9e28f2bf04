package sessionmgr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A caller's context reaches the catalog: a call whose context has ended
// returns at once with an error wrapping context.Canceled, and changes
// nothing (issue #14, point 1).

// wantCanceled fails unless err wraps context.Canceled and came quickly.
func wantCanceled(t *testing.T, what string, start time.Time, err error) {
	t.Helper()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%s: got %v, want an error wrapping context.Canceled", what, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("%s: returned after %v", what, d)
	}
}

func TestCancelledCallsChangeNothing(t *testing.T) {
	e := newTestEnv(t)
	lib := e.library("lib")
	item := e.item(lib, "item")
	e.commit(item, "a.txt", "old")
	s := e.updateSession(item)
	e.upload(s, "a.txt", "new")
	before, err := e.m.GetItem(e.ctx, item)
	e.must(err)

	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	for _, c := range []struct {
		what string
		call func() error
	}{
		{"CreateItem", func() error {
			_, err := e.m.CreateItem(ctx, ItemCreateSpec{LibraryID: lib, Name: "other"}, "")
			return err
		}},
		{"UpdateItem", func() error {
			return e.m.UpdateItem(ctx, item, ItemUpdateSpec{Description: ptr("changed")})
		}},
		{"SetItemPosix", func() error { return e.m.SetItemPosix(ctx, item, PosixChange{Mode: ptr(uint32(0o700))}) }},
		{"CompleteUpdateSession", func() error { return e.m.CompleteUpdateSession(ctx, s) }},
		{"CancelUpdateSession", func() error { return e.m.CancelUpdateSession(ctx, s) }},
		{"DeleteItem", func() error { return e.m.DeleteItem(ctx, item) }},
		{"GetItem", func() error { _, err := e.m.GetItem(ctx, item); return err }},
	} {
		start := time.Now()
		wantCanceled(t, c.what, start, c.call())
	}

	after, err := e.m.GetItem(e.ctx, item)
	e.must(err)
	if after.ContentVersion != before.ContentVersion || after.Description != before.Description || after.Posix.Mode != before.Posix.Mode {
		t.Errorf("item changed: %+v, was %+v", after, before)
	}
	if _, err := e.m.ItemByName(e.ctx, lib, "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("item created under a cancelled context: %v", err)
	}
	if got := e.updateState(s); got != StateActive {
		t.Errorf("session %s, want ACTIVE", got)
	}
	// The session completes once asked with a live context.
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	if got := e.fileContent(item, "a.txt"); got != "new" {
		t.Errorf("a.txt = %q, want new", got)
	}
}

// A complete whose context ends just before its catalog transaction is
// stopped there: the session stays ACTIVE (not ERROR: a caller that hung
// up is no failure of the server), the blob it placed is removed again,
// the item keeps its version, and a later complete commits the change.
func TestCompleteCancelledBeforeItsTransaction(t *testing.T) {
	e := newTestEnvInline(t, -1) // blob files
	item := e.item(e.library("lib"), "item")
	e.commit(item, "a.txt", "old")
	s := e.updateSession(item)
	e.upload(s, "a.txt", "new content")

	ctx, cancel := context.WithCancel(e.ctx)
	e.m.commitTxHook = func(committed bool) {
		if !committed {
			cancel()
		}
	}
	start := time.Now()
	wantCanceled(t, "CompleteUpdateSession", start, e.m.CompleteUpdateSession(ctx, s))
	e.m.commitTxHook = nil
	if got := e.updateState(s); got != StateActive {
		t.Errorf("session %s, want ACTIVE", got)
	}
	if !e.collected(e.blobPath("new content")) {
		t.Error("the blob the stopped commit placed is still there")
	}
	if !exists(e.blobPath("old")) {
		t.Error("the committed blob is gone")
	}
	if got := e.fileContent(item, "a.txt"); got != "old" {
		t.Errorf("a.txt = %q, want old", got)
	}
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	if got := e.fileContent(item, "a.txt"); got != "new content" {
		t.Errorf("a.txt = %q, want new content", got)
	}
}

// A complete whose context ends right after its catalog transaction
// committed finishes what follows: it returns nil, the replaced blob is
// removed, the session's staging is removed, and subscribers are told.
func TestCompleteCancelledAfterItsTransaction(t *testing.T) {
	e := newTestEnvInline(t, -1)
	item := e.item(e.library("lib"), "item")
	e.commit(item, "a.txt", "old")
	s := e.updateSession(item)
	e.upload(s, "a.txt", "new content")
	staging := stagingDir(filepath.Join(e.home, "storage"), s)
	if !exists(staging) {
		t.Fatalf("no staging at %s", staging)
	}
	var told []Change
	e.m.Subscribe(func(c Change) { told = append(told, c) })

	ctx, cancel := context.WithCancel(e.ctx)
	e.m.commitTxHook = func(committed bool) {
		if committed {
			cancel()
		}
	}
	e.must(e.m.CompleteUpdateSession(ctx, s))
	e.m.commitTxHook = nil
	if ctx.Err() == nil {
		t.Fatal("the hook did not run")
	}
	if got := e.updateState(s); got != StateDone {
		t.Errorf("session %s, want DONE", got)
	}
	if got := e.fileContent(item, "a.txt"); got != "new content" {
		t.Errorf("a.txt = %q, want new content", got)
	}
	if !e.collected(e.blobPath("old")) {
		t.Error("the replaced blob was not removed")
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Errorf("staging left behind: %v", err)
	}
	if len(told) != 1 || len(told[0].Files) != 1 || told[0].Files[0] != "a.txt" {
		t.Errorf("subscribers told %+v, want one change of a.txt", told)
	}
}

// fileContent reads a committed file of item, as the mount does.
func (e *testEnv) fileContent(item, name string) string {
	e.t.Helper()
	r, err := e.m.OpenFileReader(e.ctx, item, name)
	e.must(err)
	defer r.Close()
	got, err := e.readAll(r.DownloadReader)
	e.must(err)
	return got
}

// The mount's commit at close(2) runs to the end under a context that
// ended (a signal during close): once sealed, the change is committed,
// not dropped half way.
func TestDraftCloseCommitsUnderCancelledContext(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	d, err := e.m.CreateFile(e.ctx, item, "f", Posix{Mode: 0o644})
	e.must(err)
	_, err = d.WriteAt(e.ctx, []byte("written"), 0)
	e.must(err)
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	e.must(d.Close(ctx))
	if got := e.fileContent(item, "f"); got != "written" {
		t.Errorf("f = %q, want written", got)
	}
}

// An unlink under a context that ended either changes nothing (no open
// draft: it stops before its transaction) or, once it has detached the
// open draft, runs to the end: the name is gone and the open handle
// still reads what it wrote.
func TestRemoveFileUnderCancelledContext(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	e.mountFile(item, "kept", "committed")
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	wantCanceled(t, "RemoveFile", time.Now(), e.m.RemoveFile(ctx, item, "kept"))
	if got := e.fileContent(item, "kept"); got != "committed" {
		t.Errorf("kept = %q, want committed", got)
	}

	d, err := e.m.CreateFile(e.ctx, item, "open", Posix{Mode: 0o644})
	e.must(err)
	_, err = d.WriteAt(e.ctx, []byte("pending"), 0)
	e.must(err)
	e.must(e.m.RemoveFile(ctx, item, "open"))
	if _, err := e.m.ItemEntry(e.ctx, item, "open"); !errors.Is(err, ErrNotFound) {
		t.Errorf("open after unlink: %v, want NotFound", err)
	}
	// The pending change left the mount's session with the name.
	if sid, err := e.m.ActiveUpdateSession(e.ctx, item); err == nil && sid != "" {
		files, err := e.m.ListSessionFiles(e.ctx, sid)
		e.must(err)
		for _, f := range files {
			if f.Name == "open" {
				t.Errorf("the unlinked file's change is still in the session: %+v", f)
			}
		}
	}
	buf := make([]byte, 7)
	n, err := d.ReadAt(e.ctx, buf, 0)
	if string(buf[:n]) != "pending" {
		t.Errorf("the unlinked handle reads %q (%v), want pending", buf[:n], err)
	}
	e.must(d.Close(e.ctx))
}

// Finish under a context that ended (a client that hangs up after its
// last byte) records the verdict: the sealed transfer cannot resume.
func TestFinishUnderCancelledContext(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	s := e.updateSession(item)
	_, err := e.m.AddFile(e.ctx, s, FileAddSpec{Name: "a.txt", SourceType: SourcePush})
	e.must(err)
	sf, err := e.m.OpenUpload(e.ctx, s, "a.txt", UploadOptions{})
	e.must(err)
	_, err = sf.WriteAt([]byte("all of it"), 0)
	e.must(err)
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	info, err := sf.Finish(ctx)
	e.must(err)
	e.must(sf.Close())
	if info.Status != TransferReady {
		t.Errorf("status %s, want READY", info.Status)
	}
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	if got := e.fileContent(item, "a.txt"); got != "all of it" {
		t.Errorf("a.txt = %q", got)
	}
}
