package sessionmgr

import (
	"crypto/sha256"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Rule 2 of issue #13: namespace changes are committed at once and in
// order, and become durable with the next sync — Manager.Sync, a commit
// of content, or the syncer within a second. These tests read the
// durability bookkeeping: a change is durable once a sync that began
// after it returned has finished (mark < covered).

// mark is the number of syncs begun so far: a sync numbered above it
// began after the change that was just made.
func (e *testEnv) mark() uint64 {
	d := e.m.durable
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.started
}

// durableSince reports whether a sync that began after mark has finished.
func (e *testEnv) durableSince(mark uint64) bool {
	d := e.m.durable
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.covered > mark
}

// settle waits until the syncer has nothing left to do.
func (e *testEnv) settle() {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.m.durable.pending() || e.queued() > 0 {
		if time.Now().After(deadline) {
			e.t.Fatal("the syncer never caught up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *testEnv) queued() int {
	d := e.m.durable
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.freed)
}

// mountFile writes a file through the mount's path (a draft) and commits
// it, as close(2) does.
func (e *testEnv) mountFile(item, name, data string) {
	e.t.Helper()
	d, err := e.m.CreateFile(e.ctx, item, name, Posix{Mode: 0o644})
	e.must(err)
	_, err = d.WriteAt(e.ctx, []byte(data), 0)
	e.must(err)
	e.must(d.Commit(e.ctx))
	e.must(d.Close(e.ctx))
}

func (e *testEnv) blobPath(data string) string {
	sum := sha256.Sum256([]byte(data))
	return contentPath(filepath.Join(e.home, "storage"), sum[:])
}

// collectFreed runs a shared catalog's deletion of freed blobs now (the
// leader's, after a grace period; node.go); on Badger a freed blob is
// deleted once its freeing change is durable, and this does nothing.
func (e *testEnv) collectFreed() {
	e.t.Helper()
	if e.m.shared {
		e.must(e.m.deleteFreedContent(e.ctx, math.MaxInt64))
	}
}

// collected reports whether a blob file is gone once freed blobs were
// deleted (collectFreed).
func (e *testEnv) collected(path string) bool {
	e.t.Helper()
	e.collectFreed()
	return !exists(path)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestNamespaceChangeIsDurableWithinASecond(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	e.mountFile(item, "a", "data")
	e.settle()
	start := time.Now()
	e.must(e.m.RenameFile(e.ctx, item, "a", "b", false))
	mark := e.mark()
	if e.durableSince(mark) || !e.m.durable.pending() {
		t.Fatal("the rename was synced before it returned: it should be buffered")
	}
	for !e.durableSince(mark) {
		if time.Since(start) > 1500*time.Millisecond {
			t.Fatalf("rename not durable %v after it returned", time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("durable after %v", time.Since(start))
	// Idle: nothing pending, no more syncs.
	e.settle()
	before := e.mark()
	time.Sleep(2 * syncDelay)
	if n := e.mark(); n != before {
		t.Fatalf("%d syncs while idle", n-before)
	}
}

func TestSyncMakesNamespaceChangesDurable(t *testing.T) {
	e := newTestEnv(t)
	lib := e.library("lib")
	item := e.item(lib, "item")
	e.mountFile(item, "a", "data")
	e.settle()
	e.must(e.m.RenameFile(e.ctx, item, "a", "b", false))
	e.must(e.m.SetFilePosix(e.ctx, item, "b", PosixChange{Mode: ptr(uint32(0o600))}))
	e.must(e.m.RenameItem(e.ctx, lib, "item", "item2", false))
	mark := e.mark()
	e.must(e.m.Sync(e.ctx))
	if !e.durableSince(mark) || e.m.durable.pending() {
		t.Fatal("Sync returned with namespace changes not durable")
	}
}

func TestContentCommitCoversEarlierNamespaceChanges(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	e.mountFile(item, "a", "data")
	e.settle()
	e.must(e.m.RenameFile(e.ctx, item, "a", "b", false))
	mark := e.mark()
	e.mountFile(item, "c", "other data") // close(2) of a written file: synced
	if !e.durableSince(mark) {
		t.Fatal("a commit of content did not make the rename before it durable")
	}
}

func TestCloseSyncsPendingChanges(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	e.mountFile(item, "a", "data")
	e.settle()
	e.must(e.m.RenameFile(e.ctx, item, "a", "b", false))
	mark := e.mark()
	d := e.m.durable
	e.close()
	d.mu.Lock()
	covered := d.covered
	d.mu.Unlock()
	if covered <= mark {
		t.Fatal("Close left a namespace change unsynced")
	}
}

// A blob freed by an unlink or a rename over a name is deleted only
// after the change is durable: a power cut before could bring back the
// catalog's reference to it.
func TestFreedBlobSurvivesUntilTheSync(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(e *testEnv, item string) error
	}{
		{"rename over", func(e *testEnv, item string) error { return e.m.RenameFile(e.ctx, item, "new", "old", false) }},
		{"unlink", func(e *testEnv, item string) error { return e.m.RemoveFile(e.ctx, item, "old") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnvInline(t, -1) // blob files
			item := e.item(e.library("lib"), "item")
			e.mountFile(item, "old", "old content")
			e.mountFile(item, "new", "new content")
			blob := e.blobPath("old content")
			if !exists(blob) {
				t.Fatal("no blob file for old")
			}
			e.settle()
			e.must(tc.change(e, item))
			if !exists(blob) {
				t.Fatal("blob deleted before the change that freed it was durable")
			}
			e.must(e.m.Sync(e.ctx))
			if !e.collected(blob) {
				t.Fatal("blob still there after the sync")
			}
		})
	}
}

// removedFileEnv is an engine whose one file was just removed: its blob
// is freed but not yet deleted (the removal is not durable yet).
func removedFileEnv(t *testing.T) (*testEnv, string) {
	e := newTestEnvInline(t, -1)
	item := e.item(e.library("lib"), "item")
	e.mountFile(item, "f", "content")
	blob := e.blobPath("content")
	e.settle()
	e.must(e.m.RemoveFile(e.ctx, item, "f"))
	return e, blob
}

// The syncer deletes a freed blob on its own, after its sync.
func TestSyncerDeletesFreedBlobs(t *testing.T) {
	e, blob := removedFileEnv(t)
	e.settle()
	// settle sees the queue empty once the syncer took the blob from it;
	// the removal follows a catalog read (a round trip on etcd).
	for deadline := time.Now().Add(5 * time.Second); !e.collected(blob); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the syncer left a freed blob behind")
		}
	}
}

// A daemon that dies with freed blobs queued leaves them unreferenced;
// the next Open removes them.
func TestQueuedBlobsLostWithTheProcessAreSweptAtOpen(t *testing.T) {
	e, blob := removedFileEnv(t)
	d := e.m.durable
	d.mu.Lock()
	d.freed = nil // as if the process died here
	d.mu.Unlock()
	e.close()
	if !exists(blob) {
		t.Fatal("blob gone without its deletion")
	}
	e.open()
	if !e.collected(blob) {
		t.Fatal("Open did not sweep the unreferenced blob")
	}
}

func TestNamespaceSyncOptionSyncsEachChange(t *testing.T) {
	e := newTestEnvInline(t, -1)
	e.close()
	m, err := Open(Options{Home: e.home, Clock: e.clock, ReapInterval: -1, SessionTimeout: testTimeout, InlineLimit: -1, NamespaceSync: true})
	e.must(err)
	e.m = m
	item := e.item(e.library("lib"), "item")
	e.mountFile(item, "old", "old content")
	e.mountFile(item, "new", "new content")
	blob := e.blobPath("old content")
	e.settle()
	e.must(e.m.RenameFile(e.ctx, item, "new", "old", false))
	if e.m.durable.pending() {
		t.Fatal("NamespaceSync: the rename returned unsynced")
	}
	if !e.collected(blob) {
		t.Fatal("NamespaceSync: the freed blob outlived its synced change")
	}
}
