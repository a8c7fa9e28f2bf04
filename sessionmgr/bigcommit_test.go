package sessionmgr

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// bigSession opens an update session on an item filled with f000-f029
// that replaces f000-f009, removes f010-f014 and adds n000-n039 (some of
// them large enough to be blob files): 55 changes, more than one commit
// transaction takes (on etcd it failed with ErrTooLarge at about 30).
func (e *testEnv) bigSession(item string) string {
	e.t.Helper()
	s := e.updateSession(item)
	for i := range 10 {
		e.upload(s, fmt.Sprintf("f%03d", i), fmt.Sprintf("new content of f %d", i))
	}
	for i := 10; i < 15; i++ {
		e.must(e.m.RemoveSessionFile(e.ctx, s, fmt.Sprintf("f%03d", i)))
	}
	for i := range 40 {
		data := fmt.Sprintf("content of n %d", i)
		if i%10 == 0 {
			data = strings.Repeat(data, 10000) // a blob file, not inline
		}
		e.upload(s, fmt.Sprintf("n%03d", i), data)
	}
	return s
}

// wantBigCommitted checks the item after bigSession's changes.
func (e *testEnv) wantBigCommitted(item string) {
	e.t.Helper()
	files, err := e.m.ListFiles(e.ctx, item)
	e.must(err)
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	var want []string
	for i := range 30 {
		if i < 10 || i >= 15 {
			want = append(want, fmt.Sprintf("f%03d", i))
		}
	}
	for i := range 40 {
		want = append(want, fmt.Sprintf("n%03d", i))
	}
	if !slices.Equal(names, want) {
		e.t.Fatalf("files after the commit:\n%v\nwant\n%v", names, want)
	}
	for _, f := range files {
		wantVersion := "1"
		if f.Name < "f010" {
			wantVersion = "2"
		}
		if f.Version != wantVersion {
			e.t.Errorf("%s: version %s, want %s", f.Name, f.Version, wantVersion)
		}
	}
	if got := e.fileContent(item, "f003"); got != "new content of f 3" {
		e.t.Errorf("replaced file: %q", got)
	}
	if got := e.fileContent(item, "f020"); got != "content of f 20" {
		e.t.Errorf("unchanged file: %q", got)
	}
	if got := e.fileContent(item, "n020"); got != strings.Repeat("content of n 20", 10000) {
		e.t.Errorf("added blob file: %d bytes", len(got))
	}
	if got := e.fileContent(item, "n021"); got != "content of n 21" {
		e.t.Errorf("added file: %q", got)
	}
	if h := e.hidden(); len(h) != 0 {
		e.t.Errorf("left hidden: %v", h)
	}
	e.checkStorage()
}

// A session that changes more files than one transaction holds commits
// them all at once: a reader that began before it keeps the old version,
// the item's content version moves by one, the old table's blobs that
// nothing uses any more go, fsck is clean.
func TestCompleteManyFiles(t *testing.T) {
	e := newTestEnv(t)
	lib := e.library("lib")
	item := e.item(lib, "big")
	e.fill(item, "f", 30)
	before, err := e.m.GetItem(e.ctx, item)
	e.must(err)
	reader := e.downloadSession(item)
	s := e.bigSession(item)

	var seen []string // what another client sees while the table is built
	e.m.afterBuildBatch = func() {
		files, err := e.m.ListFiles(e.ctx, item)
		e.must(err)
		seen = append(seen, fmt.Sprintf("%d files, f003 %q", len(files), e.fileContent(item, "f003")))
	}
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	e.m.afterBuildBatch = nil

	if len(seen) < 3 {
		t.Fatalf("built in %d transactions; want several", len(seen))
	}
	for _, got := range seen {
		if got != `30 files, f003 "content of f 3"` {
			t.Errorf("seen during the commit: %s", got)
		}
	}
	if got := e.updateState(s); got != StateDone {
		t.Errorf("session: %s, want DONE", got)
	}
	after, err := e.m.GetItem(e.ctx, item)
	e.must(err)
	if before.ContentVersion == after.ContentVersion || fmt.Sprint(mustAtoi(before.ContentVersion)+1) != after.ContentVersion {
		t.Errorf("content version %s -> %s, want one more", before.ContentVersion, after.ContentVersion)
	}
	r, err := e.m.OpenDownload(e.ctx, reader, "f003")
	e.must(err)
	if got, err := e.readAll(r); got != "content of f 3" || err != nil {
		t.Errorf("a reader from before reads %q, %v", got, err)
	}
	e.must(r.Close())
	e.must(e.m.CancelDownloadSession(e.ctx, reader))
	e.must(e.m.sweepHidden(e.ctx)) // its 30 pins (download.go's unpin)
	e.wantBigCommitted(item)
	e.must(e.m.DeleteUpdateSession(e.ctx, s)) // its records go, all 55

	// And again, on the item's new table.
	s2 := e.updateSession(item)
	for i := range 30 {
		e.upload(s2, fmt.Sprintf("m%03d", i), fmt.Sprintf("m %d", i))
	}
	e.must(e.m.CompleteUpdateSession(e.ctx, s2))
	files, err := e.m.ListFiles(e.ctx, item)
	e.must(err)
	if len(files) != 65+30 {
		t.Errorf("%d files after a second large commit, want 95", len(files))
	}
	e.must(e.m.DeleteItem(e.ctx, item))
	e.checkStorage()
}

// A file of the item changed while the new table is built (a chmod
// through a mount) starts the build over: the change is kept.
func TestCompleteManyFilesSeesChangesMeanwhile(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "big")
	e.fill(item, "f", 30)
	s := e.bigSession(item)
	batches := 0
	mode := uint32(0o600)
	e.m.afterBuildBatch = func() {
		if batches++; batches == 1 {
			e.must(e.m.SetFilePosix(e.ctx, item, "f020", PosixChange{Mode: &mode}))
		}
	}
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	e.m.afterBuildBatch = nil
	f, err := e.m.GetFile(e.ctx, item, "f020")
	e.must(err)
	if f.Posix.Mode&0o7777 != mode {
		t.Errorf("f020's mode %o, want the %o set while the commit was built", f.Posix.Mode, mode)
	}
	e.wantBigCommitted(item)
}

// A session cancelled while its table is built ends CANCELED; the item
// is as it was, and the table built so far is swept.
func TestCompleteManyFilesCancelled(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "big")
	e.fill(item, "f", 30)
	before, err := e.m.GetItem(e.ctx, item)
	e.must(err)
	s := e.bigSession(item)
	e.m.afterBuildBatch = func() {
		e.m.afterBuildBatch = nil
		e.must(e.m.CancelUpdateSession(e.ctx, s))
	}
	wantKind(t, e.m.CompleteUpdateSession(e.ctx, s), KindNotAllowedInCurrentState)
	if got := e.updateState(s); got != StateCanceled {
		t.Errorf("session: %s, want CANCELED", got)
	}
	after, err := e.m.GetItem(e.ctx, item)
	e.must(err)
	if after.ContentVersion != before.ContentVersion {
		t.Errorf("content version %s -> %s", before.ContentVersion, after.ContentVersion)
	}
	files, err := e.m.ListFiles(e.ctx, item)
	e.must(err)
	if len(files) != 30 || e.fileContent(item, "f003") != "content of f 3" {
		t.Errorf("item after a cancelled commit: %d files, f003 %q", len(files), e.fileContent(item, "f003"))
	}
	if h := e.hidden(); len(h) != 0 {
		t.Errorf("left hidden: %v", h)
	}
	e.checkStorage()
}

// A caller gone mid-build changes nothing: the session is ACTIVE again
// and a second complete commits it.
func TestCompleteManyFilesCallerGone(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "big")
	e.fill(item, "f", 30)
	s := e.bigSession(item)
	ctx, cancel := context.WithCancel(e.ctx)
	e.m.afterBuildBatch = func() {
		e.m.afterBuildBatch = nil
		cancel()
	}
	if err := e.m.CompleteUpdateSession(ctx, s); err == nil {
		t.Fatal("complete of a caller gone returned no error")
	}
	if got := e.updateState(s); got != StateActive {
		t.Errorf("session after its caller went: %s, want ACTIVE", got)
	}
	if files, err := e.m.ListFiles(e.ctx, item); err != nil || len(files) != 30 {
		t.Errorf("item after an abandoned commit: %d files, %v", len(files), err)
	}
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	e.wantBigCommitted(item)
}
