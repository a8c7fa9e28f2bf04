package sessionmgr

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"clfs/meta"
)

// Small files are staged in memory and stored inline in the catalog. These
// tests pin down that nothing of them touches the storage directory, that
// they read back, deduplicate, go away with their last reference, survive
// restarts, and turn into blob files exactly when they must.

// stagingFiles counts files under the backing's staging directory.
func (e *testEnv) stagingFiles() int {
	e.t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(e.home, "storage", "staging"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	e.must(err)
	return n
}

func (e *testEnv) inlineBlobs() map[string][]byte {
	e.t.Helper()
	out := map[string][]byte{}
	e.must(e.m.store.View(e.ctx, func(tx *meta.Tx) error {
		return tx.InlineContents(func(k meta.ContentKey, b []byte) error {
			out[k.String()] = b
			return nil
		})
	}))
	return out
}

func (e *testEnv) fileBlobs() int {
	e.t.Helper()
	blobs, err := listBlobs(filepath.Join(e.home, "storage"))
	e.must(err)
	return len(blobs)
}

func TestInlineCommitTouchesNoFiles(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "small")
	s := e.updateSession(item)
	e.upload(s, "a.txt", "alpha")
	e.upload(s, "empty", "")
	if n := e.stagingFiles(); n != 0 {
		t.Fatalf("%d staging files for READY small files, want 0", n)
	}
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	if n := e.fileBlobs(); n != 0 {
		t.Fatalf("%d blob files for small content, want 0", n)
	}
	if got := len(e.inlineBlobs()); got != 2 {
		t.Fatalf("%d inline blobs, want 2", got)
	}
	if got := e.read(item, "a.txt"); got != "alpha" {
		t.Fatalf("read %q", got)
	}
	if got := e.read(item, "empty"); got != "" {
		t.Fatalf("read %q", got)
	}
	if n := e.m.stagedMem.Load(); n != 0 {
		t.Fatalf("%d bytes still counted as staged in memory", n)
	}
	e.checkStorage()
}

func TestInlineStorageURINamesAFile(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "small")
	e.commit(item, "a.txt", "alpha")
	p := e.storagePath(item, "a.txt")
	b, err := os.ReadFile(p)
	e.must(err)
	if string(b) != "alpha" {
		t.Fatalf("storage URI file holds %q", b)
	}
	e.checkStorage() // the copy is referenced, so not an orphan

	// fsck checks the copy too: clients read it directly.
	e.must(os.WriteFile(p, []byte("alphA"), 0o600))
	rep, err := e.m.Fsck(e.ctx, nil)
	e.must(err)
	if len(rep.Problems) != 1 || rep.Problems[0].Path != p || !strings.Contains(rep.Problems[0].Msg, "sha256") {
		t.Fatalf("fsck problems %+v, want one naming %s", rep.Problems, p)
	}

	// The copy goes with the blob.
	s := e.updateSession(item)
	e.must(e.m.RemoveSessionFile(e.ctx, s, "a.txt"))
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	if !e.collected(p) {
		t.Fatalf("written-out copy of a dropped blob: %s", p)
	}
	if n := len(e.inlineBlobs()); n != 0 {
		t.Fatalf("%d inline blobs after the last reference went", n)
	}
}

func TestInlineSharedContent(t *testing.T) {
	e := newTestEnv(t)
	lib := e.library("lib")
	a, b := e.item(lib, "a"), e.item(lib, "b")
	e.commit(a, "x", "same", "y", "same")
	e.commit(b, "z", "same")
	if n := len(e.inlineBlobs()); n != 1 {
		t.Fatalf("%d inline blobs for one content", n)
	}
	e.checkStorage()
	e.must(e.m.DeleteItem(e.ctx, a))
	if n := len(e.inlineBlobs()); n != 1 {
		t.Fatalf("%d inline blobs while b still uses it", n)
	}
	e.must(e.m.DeleteItem(e.ctx, b))
	if n := len(e.inlineBlobs()); n != 0 {
		t.Fatalf("%d inline blobs after both items went", n)
	}
	e.checkStorage()
}

func TestInlineSpillsPastTheLimit(t *testing.T) {
	e := newTestEnvInline(t, 16)
	item := e.item(e.library("lib"), "i")
	s := e.updateSession(item)
	_, err := e.m.AddFile(e.ctx, s, FileAddSpec{Name: "f", SourceType: SourcePush})
	e.must(err)
	sf, err := e.m.OpenUpload(e.ctx, s, "f", UploadOptions{})
	e.must(err)
	_, err = sf.WriteAt([]byte("0123456789"), 0)
	e.must(err)
	if n := e.stagingFiles(); n != 0 {
		t.Fatalf("%d staging files under the limit", n)
	}
	_, err = sf.WriteAt([]byte("abcdefghij"), 10) // 20 bytes > 16
	e.must(err)
	if n := e.stagingFiles(); n != 1 {
		t.Fatalf("%d staging files past the limit, want 1", n)
	}
	if got, _ := sf.ReadAt(make([]byte, 20), 0); got != 20 {
		t.Fatalf("read back %d bytes", got)
	}
	_, err = sf.Finish(e.ctx)
	e.must(err)
	e.must(sf.Close())
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	if e.fileBlobs() != 1 || len(e.inlineBlobs()) != 0 {
		t.Fatalf("%d blob files, %d inline blobs; want 1, 0", e.fileBlobs(), len(e.inlineBlobs()))
	}
	if got := e.read(item, "f"); got != "0123456789abcdefghij" {
		t.Fatalf("read %q", got)
	}
	e.checkStorage()
}

func TestInlineSyncWritesStaging(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "i")
	s := e.updateSession(item)
	_, err := e.m.AddFile(e.ctx, s, FileAddSpec{Name: "f", SourceType: SourcePush})
	e.must(err)
	sf, err := e.m.OpenUpload(e.ctx, s, "f", UploadOptions{})
	e.must(err)
	_, err = sf.WriteAt([]byte("synced"), 0)
	e.must(err)
	e.must(sf.sync()) // fsync(2) asks for the bytes on disk
	if n := e.stagingFiles(); n != 1 {
		t.Fatalf("%d staging files after sync, want 1", n)
	}
	_, err = sf.Finish(e.ctx)
	e.must(err)
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	if got := e.read(item, "f"); got != "synced" {
		t.Fatalf("read %q", got)
	}
	e.checkStorage()
}

func TestInlineMemoryBudget(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "i")
	e.m.stagedMem.Store(stagedMemoryBudget) // others hold it all
	s := e.updateSession(item)
	e.upload(s, "f", "no room in memory")
	if n := e.stagingFiles(); n != 1 {
		t.Fatalf("%d staging files with the budget spent, want 1", n)
	}
	e.m.stagedMem.Store(0)
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	if got := e.read(item, "f"); got != "no room in memory" {
		t.Fatalf("read %q", got)
	}
	if n := e.m.stagedMem.Load(); n != 0 {
		t.Fatalf("%d bytes counted as staged after the budget test", n)
	}
	e.checkStorage()
}

func TestInlineReadyFileSurvivesRestart(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "i")
	s := e.updateSession(item)
	e.upload(s, "kept", "ready before the restart")
	e.close()
	e.open()
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	if got := e.read(item, "kept"); got != "ready before the restart" {
		t.Fatalf("read %q", got)
	}
	e.checkStorage()
}

func TestInlineChangeCarriedToSuccessor(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "i")
	s := e.updateSession(item)
	e.upload(s, "first", "one")
	e.upload(s, "second", "two")
	next, err := e.m.complete(e.ctx, s, []string{"first"}, nil)
	e.must(err)
	if next == "" {
		t.Fatal("no successor for the change left out")
	}
	if got := e.read(item, "first"); got != "one" {
		t.Fatalf("read %q", got)
	}
	e.must(e.m.CompleteUpdateSession(e.ctx, next))
	if got := e.read(item, "second"); got != "two" {
		t.Fatalf("carried file read %q", got)
	}
	e.checkStorage()
}

func TestInlineAppendStartsFromCommitted(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "i")
	e.commit(item, "log", "line 1\n")
	s := e.updateSession(item)
	_, err := e.m.AddFile(e.ctx, s, FileAddSpec{Name: "log", SourceType: SourcePush})
	e.must(err)
	sf, err := e.m.OpenUpload(e.ctx, s, "log", UploadOptions{FromCommitted: true})
	e.must(err)
	_, err = sf.Write([]byte("line 2\n"))
	e.must(err)
	_, err = sf.Finish(e.ctx)
	e.must(err)
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	if got := e.read(item, "log"); got != "line 1\nline 2\n" {
		t.Fatalf("read %q", got)
	}
	e.checkStorage()
}

func TestInlineReAddDropsStagedBytes(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "i")
	s := e.updateSession(item)
	e.upload(s, "f", "first try")
	_, err := e.m.AddFile(e.ctx, s, FileAddSpec{Name: "f", SourceType: SourcePush})
	e.must(err)
	var staged []byte
	e.must(e.m.store.View(e.ctx, func(tx *meta.Tx) error {
		sid, err := tx.ResolveUUID(s, meta.UpdateSessionObject)
		if err != nil {
			return err
		}
		staged, err = tx.StagedBytes(sid, "f")
		if errors.Is(err, meta.ErrNotFound) {
			return nil
		}
		return err
	}))
	if staged != nil {
		t.Fatalf("staged bytes %q left after a re-add", staged)
	}
	// Completing now must refuse: the file waits for its transfer.
	wantKind(t, e.m.CompleteUpdateSession(e.ctx, s), KindNotAllowedInCurrentState)
	e.checkStorage()
}

// One commit is one catalog transaction, which the engines bound: a
// session's small files are staged in the catalog up to
// inlineCommitBudget, the rest in staging files, and 25 files of 60 KiB
// (1.5 MiB: past Badger's bound for one transaction, at etcd's) commit.
func TestManySmallFilesCommitWithinTheBudget(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "many")
	s := e.updateSession(item)
	want := map[string]string{}
	for i := range 25 {
		data := strings.Repeat(fmt.Sprintf("%02d", i), 30<<10)
		name := fmt.Sprintf("f%02d", i)
		want[name] = data
		e.upload(s, name, data)
	}
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	var inline int
	for _, b := range e.inlineBlobs() {
		inline += len(b)
	}
	if inline == 0 || inline > inlineCommitBudget {
		t.Errorf("%d bytes inline, want some and at most %d", inline, inlineCommitBudget)
	}
	if n := e.fileBlobs(); n < 25-inlineCommitBudget/(60<<10) {
		t.Errorf("%d blob files", n)
	}
	for name, data := range want {
		if got := e.read(item, name); got != data {
			t.Fatalf("%s: %d bytes read back, want %d", name, len(got), len(data))
		}
	}
	e.checkStorage()
	rep, err := e.m.Fsck(e.ctx, nil)
	e.must(err)
	if len(rep.Problems) != 0 {
		t.Fatalf("fsck: %+v", rep.Problems)
	}
}
