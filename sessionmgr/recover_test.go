package sessionmgr

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"clfs/meta"
)

// Recovery: a process that dies mid-transfer leaves partial staging,
// orphaned directories and maybe unreferenced blobs; Open cleans up and
// the sessions carry on (or expire) as usual.
func TestRecoverAfterRestart(t *testing.T) {
	t.Parallel()
	e := newTestEnvInline(t, -1) // about blob files and staging on disk
	storage := filepath.Join(e.home, "storage")
	lib := e.library("lib")
	item := e.item(lib, "iso")
	e.commit(item, "keep.iso", "committed bytes")
	item2 := e.item(lib, "other")

	// s1: one file mid-transfer, one received, one never started.
	s1 := e.updateSession(item)
	e.upload(s1, "ready.iso", "ready bytes")
	_, err := e.m.AddFile(e.ctx, s1, FileAddSpec{Name: "partial.iso", SourceType: SourcePush})
	e.must(err)
	sf, err := e.m.OpenUpload(e.ctx, s1, "partial.iso", UploadOptions{})
	e.must(err)
	_, err = sf.WriteAt([]byte("half of it"), 0)
	e.must(err)
	_, err = e.m.AddFile(e.ctx, s1, FileAddSpec{Name: "waiting.iso", SourceType: SourcePush})
	e.must(err)

	// s2: a received file whose staged bytes will be lost while down.
	s2 := e.updateSession(item2)
	e.upload(s2, "lost.iso", "lost bytes")

	e.close()
	sf.Close() // a handle the dead process held: harmless now

	// While down: lose s2's staged bytes, plant orphaned staging and an
	// unreferenced blob, as a crash between link and catalog commit leaves.
	entries, err := os.ReadDir(stagingDir(storage, s2))
	e.must(err)
	for _, de := range entries {
		e.must(os.Remove(filepath.Join(stagingDir(storage, s2), de.Name())))
	}
	orphan := stagingDir(storage, uuid.NewString())
	e.must(os.MkdirAll(orphan, 0o700))
	e.must(os.WriteFile(filepath.Join(orphan, "7"), []byte("junk"), 0o600))
	if e.meta != "" {
		// Shared catalog: a young directory of no known session may be
		// another node's in the making (sweepStaging); this one is old.
		past := time.Now().Add(-2 * DefaultContentGrace)
		e.must(os.Chtimes(orphan, past, past))
	}
	blob := filepath.Join(storage, "content", "ab", "ab"+strings.Repeat("cd", 31))
	e.must(os.WriteFile(blob, []byte("unreferenced"), 0o600))
	notABlob := filepath.Join(storage, "content", "ab", "README")
	e.must(os.WriteFile(notABlob, []byte("not ours"), 0o600))

	e.open()

	files := map[string]UpdateSessionFile{}
	list, err := e.m.ListSessionFiles(e.ctx, s1)
	e.must(err)
	for _, f := range list {
		files[f.Name] = f
	}
	if f := files["partial.iso"]; f.Status != TransferError || f.ErrorMessage == nil || !strings.Contains(f.ErrorMessage.DefaultMessage, "interrupted") {
		t.Errorf("partial upload after restart: %+v", f)
	}
	if f := files["ready.iso"]; f.Status != TransferReady {
		t.Errorf("received file after restart: %+v", f)
	}
	if f := files["waiting.iso"]; f.Status != TransferWaiting {
		t.Errorf("file never started after restart: %+v", f)
	}
	if f := files["keep.iso"]; f.Status != TransferReady || f.SourceType != SourceNone {
		t.Errorf("committed file in the session's view: %+v", f)
	}
	lost, err := e.m.GetSessionFile(e.ctx, s2, "lost.iso")
	e.must(err)
	if lost.Status != TransferError || lost.ErrorMessage == nil {
		t.Errorf("received file whose staging vanished: %+v", lost)
	}
	e.collectFreed()
	for _, gone := range []string{orphan, blob} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s survived recovery: %v", gone, err)
		}
	}
	if _, err := os.Stat(notABlob); err != nil {
		t.Errorf("recovery removed a file that is not a blob: %v", err)
	}
	if got := e.updateState(s1); got != StateActive {
		t.Fatalf("s1 is %s after restart", got)
	}
	rep, err := e.m.Fsck(e.ctx, nil)
	e.must(err)
	if len(rep.Problems) != 0 || rep.FilesChecked != 1 {
		t.Fatalf("fsck after recovery: %+v", rep)
	}

	// complete refuses until the interrupted file is sent again.
	wantKind(t, e.m.CompleteUpdateSession(e.ctx, s1), KindNotAllowedInCurrentState)
	e.upload(s1, "partial.iso", "all of it")
	e.must(e.m.RemoveSessionFile(e.ctx, s1, "waiting.iso"))
	e.must(e.m.CompleteUpdateSession(e.ctx, s1))
	for name, want := range map[string]string{"keep.iso": "committed bytes", "ready.iso": "ready bytes", "partial.iso": "all of it"} {
		if got := e.read(item, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}

	// s2 was left alone: it expires after the timeout like any session,
	// and its staging goes with it.
	e.clock.Advance(testTimeout + 1)
	_, err = e.m.ExpireDue(e.ctx)
	e.must(err)
	got, err := e.m.GetUpdateSession(e.ctx, s2)
	e.must(err)
	if got.State != StateCanceled || got.ErrorMessage == nil || got.ErrorMessage.DefaultMessage != expiredMessage {
		t.Fatalf("s2 after the timeout: %+v", got)
	}
	if _, err := os.Stat(stagingDir(storage, s2)); !os.IsNotExist(err) {
		t.Errorf("s2's staging survived expiry: %v", err)
	}
	if _, err := e.m.CreateUpdateSession(e.ctx, UpdateSessionCreateSpec{LibraryItemID: item2}, ""); err != nil {
		t.Fatalf("item lock not released by expiry: %v", err)
	}
	rep, err = e.m.Fsck(e.ctx, nil)
	e.must(err)
	if len(rep.Problems) != 0 {
		t.Fatalf("fsck: %+v", rep.Problems)
	}
}

// TestRecoverKeepsSessionsAcrossManyRestarts: reopening a home repeatedly
// neither loses committed content nor duplicates references.
func TestRecoverIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "iso")
	e.commit(item, "a", "aaa", "b", "bbb")
	d := e.downloadSession(item)
	e.commit(item, "a", "AAA")
	for range 3 {
		e.close()
		e.open()
	}
	rep, err := e.m.Fsck(e.ctx, nil)
	e.must(err)
	if len(rep.Problems) != 0 || rep.BlobsChecked != 3 {
		t.Fatalf("fsck: %+v", rep)
	}
	r, err := e.m.OpenDownload(e.ctx, d, "a")
	e.must(err)
	got, err := e.readAll(r)
	e.must(err)
	r.Close()
	if got != "aaa" {
		t.Fatalf("pinned content after restarts: %q", got)
	}
}

func (e *testEnv) read(item, name string) string {
	e.t.Helper()
	d := e.downloadSession(item)
	defer func() { e.must(e.m.DeleteDownloadSession(e.ctx, d)) }()
	r, err := e.m.OpenDownload(e.ctx, d, name)
	e.must(err)
	defer r.Close()
	got, err := e.readAll(r)
	e.must(err)
	return got
}

// storagePath is the local path of a committed file, from its storage
// URI as the API reports it.
func (e *testEnv) storagePath(item, name string) string {
	e.t.Helper()
	st, err := e.m.GetStorage(e.ctx, item, name)
	e.must(err)
	if len(st) != 1 || len(st[0].StorageURIs) != 1 {
		e.t.Fatalf("storage of %s: %+v", name, st)
	}
	u, err := url.Parse(st[0].StorageURIs[0])
	e.must(err)
	if u.Scheme != "file" {
		e.t.Fatalf("storage URI %s is not file://", st[0].StorageURIs[0])
	}
	return u.Path
}

func TestFsckFindsDamage(t *testing.T) {
	t.Parallel()
	e := newTestEnvInline(t, -1) // about blob files and staging on disk
	lib := e.library("lib")
	item := e.item(lib, "iso")
	e.commit(item, "flipped.iso", "some content", "short.iso", "short content", "gone.iso", "gone content", "fine.iso", "fine")

	// ListStorage reports the same paths as GetStorage.
	all, err := e.m.ListStorage(e.ctx, item)
	e.must(err)
	if len(all) != 4 {
		t.Fatalf("ListStorage: %+v", all)
	}

	flipped := e.storagePath(item, "flipped.iso")
	b, err := os.ReadFile(flipped)
	e.must(err)
	b[3] ^= 0x20
	e.must(os.WriteFile(flipped, b, 0o600))
	e.must(os.Truncate(e.storagePath(item, "short.iso"), 5))
	e.must(os.Remove(e.storagePath(item, "gone.iso")))

	rep, err := e.m.Fsck(e.ctx, nil)
	e.must(err)
	want := map[string]string{
		"lib/iso/flipped.iso": "sha256",
		"lib/iso/short.iso":   "is 5 bytes",
		"lib/iso/gone.iso":    "unreadable",
	}
	if len(rep.Problems) != len(want) || rep.FilesChecked != 4 {
		t.Fatalf("fsck: %+v", rep)
	}
	for _, p := range rep.Problems {
		if w, ok := want[p.File]; !ok || !strings.Contains(p.Msg, w) {
			t.Errorf("problem %+v, want one for %s mentioning %q", p, p.File, w)
		}
	}

	// A blob pinned only by a download session is checked too.
	item2 := e.item(lib, "pinned")
	e.commit(item2, "a", "version one")
	d := e.downloadSession(item2)
	old := e.storagePath(item2, "a")
	e.commit(item2, "a", "version two")
	e.must(os.WriteFile(old, []byte("version 0ne"), 0o600))
	rep, err = e.m.Fsck(e.ctx, nil)
	e.must(err)
	found := false
	for _, p := range rep.Problems {
		if p.Path == old && strings.Contains(p.Msg, "pinned by a download session") {
			found = true
		}
	}
	if !found {
		t.Errorf("corrupt pinned blob not reported: %+v", rep.Problems)
	}
	e.must(e.m.DeleteDownloadSession(e.ctx, d))

	// Reference counts that disagree with their users.
	sha := bytes.Repeat([]byte{0x42}, 32)
	e.must(e.m.store.Update(e.ctx, func(tx *meta.Tx) error {
		_, err := tx.AddContentRef(meta.ContentKey{BackingID: 1 << 40, SHA256: sha}, 1, 1)
		return err
	}))
	rep, err = e.m.Fsck(e.ctx, nil)
	e.must(err)
	found = false
	for _, p := range rep.Problems {
		if strings.Contains(p.Msg, "nothing uses it") {
			found = true
		}
	}
	if !found {
		t.Errorf("stray reference not reported: %+v", rep.Problems)
	}
}

// TestRestartKeepsExpirationPromise: activity that only the old process
// saw (writes, reads) moved expiration_time forward; a restart must not
// expire sessions before what get promised.
func TestRestartKeepsExpirationPromise(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "iso")
	e.commit(item, "a", "aaa")
	s := e.updateSession(item)
	d := e.downloadSession(item)
	_, err := e.m.AddFile(e.ctx, s, FileAddSpec{Name: "b", SourceType: SourcePush})
	e.must(err)

	e.clock.Advance(4 * time.Minute)
	sf, err := e.m.OpenUpload(e.ctx, s, "b", UploadOptions{})
	e.must(err)
	_, err = sf.Write([]byte("x"))
	e.must(err)
	e.must(sf.Close())
	r, err := e.m.OpenDownload(e.ctx, d, "a")
	e.must(err)
	_, err = e.readAll(r)
	e.must(err)
	e.must(r.Close())
	us, err := e.m.GetUpdateSession(e.ctx, s)
	e.must(err)
	ds, err := e.m.GetDownloadSession(e.ctx, d)
	e.must(err)
	promised := testEpoch.Add(4*time.Minute + testTimeout)
	if !us.ExpirationTime.Equal(promised) || !ds.ExpirationTime.Equal(promised) {
		t.Fatalf("expiration %v and %v, want %v", us.ExpirationTime, ds.ExpirationTime, promised)
	}

	e.close()
	e.clock.Advance(time.Minute)
	e.open()
	e.clock.Advance(testTimeout - time.Minute - time.Second) // 1s before the promise
	_, err = e.m.ExpireDue(e.ctx)
	e.must(err)
	if got := e.updateState(s); got != StateActive {
		t.Errorf("update session %s before its expiration_time", got)
	}
	if got := e.downloadState(d); got != StateActive {
		t.Errorf("download session %s before its expiration_time", got)
	}
	e.clock.Advance(testTimeout)
	_, err = e.m.ExpireDue(e.ctx)
	e.must(err)
	if got := e.updateState(s); got != StateCanceled {
		t.Errorf("update session %s after its expiration_time", got)
	}
	if got := e.downloadState(d); got != StateCanceled {
		t.Errorf("download session %s after its expiration_time", got)
	}
}
