package meta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"
)

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExpiryKeysSortByTime(t *testing.T) {
	a := expiryKey(255, UpdateSessionKind, 9)
	b := expiryKey(256, UpdateSessionKind, 1)
	if bytes.Compare(a, b) >= 0 {
		t.Fatalf("expiry at 255 sorts after 256: %x vs %x", a, b)
	}
	at, kind, id, ok := parseExpiryKey(b)
	if !ok || at != 256 || kind != UpdateSessionKind || id != 1 {
		t.Fatalf("parse = %d %c %d %v", at, kind, id, ok)
	}
	if _, _, _, ok := parseExpiryKey([]byte{kindExpiry, 1}); ok {
		t.Fatal("short key parsed")
	}
}

func testIDsAreUniqueAcrossReopen(t *testing.T, c *testCatalog) {
	seen := map[uint64]bool{}
	for round := 0; round < 3; round++ {
		s := c.open(t)
		for i := 0; i < 100; i++ {
			id, err := s.NextID(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if id == 0 || seen[id] {
				t.Fatalf("round %d: id %d zero or reused", round, id)
			}
			seen[id] = true
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Conflicting read-modify-write transactions are retried, so none is lost.
func testUpdateRetriesConflicts(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	key := ContentKey{BackingID: 1, SHA256: bytes.Repeat([]byte{7}, 32)}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := s.Update(context.Background(), func(tx *Tx) error {
					_, err := tx.AddContentRef(key, 1, 10)
					return err
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	err := s.View(context.Background(), func(tx *Tx) error {
		r, err := tx.ContentRef(key)
		if err != nil {
			return err
		}
		if r.Refs != writers*each {
			t.Errorf("refs = %d, want %d", r.Refs, writers*each)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A transaction that loses every round gives up after maxTxnAttempts
// with ErrConflict, having committed nothing.
func testUpdateGivesUpWithErrConflict(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	key := ContentKey{BackingID: 2, SHA256: bytes.Repeat([]byte{9}, 32)}
	rounds := 0
	err := s.UpdateBuffered(context.Background(), func(tx *Tx) error {
		rounds++
		if _, err := tx.ContentRef(key); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		// Another writer of the key read above commits first.
		if err := s.UpdateBuffered(context.Background(), func(other *Tx) error {
			_, err := other.AddContentRef(key, 1, 1)
			return err
		}); err != nil {
			return err
		}
		_, err := tx.AddContentRef(key, 100, 1)
		return err
	})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("got %v, want ErrConflict", err)
	}
	if rounds != maxTxnAttempts {
		t.Errorf("%d rounds, want %d", rounds, maxTxnAttempts)
	}
	err = s.View(context.Background(), func(tx *Tx) error {
		r, err := tx.ContentRef(key)
		if err == nil && r.Refs != int64(rounds) {
			t.Errorf("refs = %d, want %d (the other writer's only)", r.Refs, rounds)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Session records are stored as they always were: a home written by an
// earlier release reads back, and one written now reads in it.
func TestSessionRecordsJSON(t *testing.T) {
	var u UpdateSession
	u.ID, u.UUID, u.ItemID, u.ItemContentVersion, u.State, u.ErrorMessage = 5, "u-u", 3, 2, "ACTIVE", "e"
	u.ClientProgress, u.ExpirationTime, u.CreationTime, u.Owner = 50, 9, 1, "mount:x"
	u.WarningBehavior, u.WarningBehaviorIgnore, u.CompletePending = []string{"w"}, []bool{true}, true
	var d DownloadSession
	d.ID, d.UUID, d.ItemID, d.ItemContentVersion, d.State, d.ErrorMessage = 6, "u-d", 3, 2, "CANCELED", "e"
	d.ClientProgress, d.ExpirationTime, d.CreationTime, d.Owner = 7, 9, 1, "mount:x"
	d.Pinned, d.PinOnOpen = true, true
	for _, tc := range []struct {
		v    any
		want string
	}{
		{&u, `{"id":5,"uuid":"u-u","item_id":3,"item_content_version":2,"state":"ACTIVE","error_message":"e","client_progress":50,"expiration_time":9,"creation_time":1,"owner":"mount:x","warning_behavior":["w"],"warning_behavior_ignore":[true],"complete_pending":true}`},
		{&d, `{"id":6,"uuid":"u-d","item_id":3,"item_content_version":2,"state":"CANCELED","error_message":"e","client_progress":7,"expiration_time":9,"creation_time":1,"owner":"mount:x","pinned":true,"pin_on_open":true}`},
	} {
		b, err := encode(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%T:\n got %s\nwant %s", tc.v, b, tc.want)
		}
	}
}

func testContentRefDisappearsAtZero(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	key := ContentKey{BackingID: 3, SHA256: bytes.Repeat([]byte{1}, 32)}
	err := s.Update(context.Background(), func(tx *Tx) error {
		if n, err := tx.AddContentRef(key, 2, 5); err != nil || n != 2 {
			t.Fatalf("add = %d %v", n, err)
		}
		if n, err := tx.AddContentRef(key, -2, 0); err != nil || n != 0 {
			t.Fatalf("drop = %d %v", n, err)
		}
		_, err := tx.ContentRef(key)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("ref after zero: %v", err)
		}
		refs, err := tx.ContentRefs()
		if len(refs) != 0 {
			t.Fatalf("refs listed: %v", refs)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testRecordsRoundTripAndIndexes(t *testing.T, c *testCatalog) {
	s := c.open(t)
	err := s.Update(context.Background(), func(tx *Tx) error {
		if err := tx.PutLibrary(&Library{ID: 1, UUID: "u1", Name: "Lib"}); err != nil {
			return err
		}
		for i, name := range []string{"b", "A", "c"} {
			if err := tx.PutItem(&Item{ID: uint64(10 + i), LibraryID: 1, Name: name}); err != nil {
				return err
			}
		}
		return tx.PutTableFile(10, &File{ID: 5, ItemID: 10, Name: "x.iso", Size: 3, SHA256: []byte{1, 2}})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = c.open(t)
	defer s.Close()
	err = s.View(context.Background(), func(tx *Tx) error {
		if id, err := tx.LibraryIDByName("LIB"); err != nil || id != 1 {
			t.Errorf("library by folded name = %d %v", id, err)
		}
		ids, err := tx.ItemIDs(1)
		if err != nil || len(ids) != 3 || ids[0] != 11 {
			t.Errorf("items in name order = %v %v", ids, err)
		}
		f, err := tx.File(&Item{ID: 10}, "x.iso")
		if err != nil || f.Size != 3 || !bytes.Equal(f.SHA256, []byte{1, 2}) {
			t.Errorf("file = %+v %v", f, err)
		}
		if _, err := tx.File(&Item{ID: 10}, "X.ISO"); !errors.Is(err, ErrNotFound) {
			t.Errorf("file names must be case-sensitive: %v", err)
		}
		if _, err := tx.ResolveUUID("u1", ItemObject); !errors.Is(err, ErrNotFound) {
			t.Errorf("uuid of another kind resolved: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testDueExpiriesStopsAtNow(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	err := s.Update(context.Background(), func(tx *Tx) error {
		for _, at := range []int64{30, 10, 20} {
			if err := tx.PutDownloadSession(&DownloadSession{SessionHeader: SessionHeader{ID: uint64(at), ExpirationTime: at}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(context.Background(), func(tx *Tx) error {
		due, err := tx.DueExpiries(20)
		if err != nil || len(due) != 2 || due[0].At != 10 || due[1].At != 20 {
			t.Errorf("due = %+v %v", due, err)
		}
		return nil
	})
}

// The record cache must never show a stale, a foreign pending, or a
// caller-modified record.
func TestRecordCacheFollowsVersions(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	read := func() *Item {
		t.Helper()
		var it *Item
		must(s.View(context.Background(), func(tx *Tx) (err error) { it, err = tx.Item(7); return err }))
		return it
	}
	must(s.Update(context.Background(), func(tx *Tx) error { return tx.PutItem(&Item{ID: 7, Name: "one"}) }))
	first := read()
	first.Name = "changed by a caller"
	if got := read().Name; got != "one" {
		t.Fatalf("after a caller changed its copy: %q", got)
	}
	must(s.Update(context.Background(), func(tx *Tx) error {
		it, err := tx.Item(7)
		if err != nil {
			return err
		}
		it.Name = "two"
		if err := tx.PutItem(it); err != nil {
			return err
		}
		// Read back inside the writing transaction: the pending value.
		again, err := tx.Item(7)
		if err != nil {
			return err
		}
		if again.Name != "two" {
			t.Errorf("read back in its transaction: %q", again.Name)
		}
		return nil
	}))
	if got := read().Name; got != "two" {
		t.Fatalf("after an update: %q", got)
	}
	// A snapshot older than the cached version still sees its own.
	old := s.engine.(*badgerEngine).db.NewTransaction(false)
	defer old.Discard()
	must(s.Update(context.Background(), func(tx *Tx) error { return tx.PutItem(&Item{ID: 7, Name: "three"}) }))
	if got := read().Name; got != "three" {
		t.Fatalf("after a second update: %q", got)
	}
	it, err := (&Tx{t: badgerTxn{old}, s: s}).Item(7)
	must(err)
	if it.Name != "two" {
		t.Fatalf("old snapshot reads %q", it.Name)
	}
	must(s.Update(context.Background(), func(tx *Tx) error { return tx.DeleteItem(7) }))
	if err := s.View(context.Background(), func(tx *Tx) error { _, err := tx.Item(7); return err }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func testRecordCacheCopiesFiles(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	files := func() []File {
		t.Helper()
		var fs []File
		must(s.View(context.Background(), func(tx *Tx) (err error) { fs, err = tx.Files(&Item{ID: 3}); return err }))
		return fs
	}
	must(s.Update(context.Background(), func(tx *Tx) error {
		return tx.PutTableFile(3, &File{ItemID: 3, Name: "a", SHA256: []byte{1, 2}, Requested: &Checksum{Algorithm: "MD5", Value: "x"}})
	}))
	first := files()
	first[0].SHA256[0] = 9
	first[0].Requested.Value = "changed by a caller"
	if got := files()[0]; got.SHA256[0] != 1 || got.Requested.Value != "x" {
		t.Fatalf("cached file changed through a caller's copy: %+v", got)
	}
	must(s.Update(context.Background(), func(tx *Tx) error {
		if err := tx.PutTableFile(3, &File{ItemID: 3, Name: "b", Size: 5}); err != nil {
			return err
		}
		fs, err := tx.Files(&Item{ID: 3}) // sees its own pending write
		if err != nil || len(fs) != 2 {
			t.Errorf("files in the writing transaction: %v %+v", err, fs)
		}
		return err
	}))
	if got := files(); len(got) != 2 || got[1].Size != 5 {
		t.Fatalf("after adding a file: %+v", got)
	}
}

// A transaction in a memtable that was switched out (the next write found
// it full) sits in a log Badger's own Sync does not cover: Store.Sync must
// fsync it too, so that a Sync called after the transaction returned
// makes it durable.
func TestSyncCoversSwitchedOutMemtable(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	// Below the value threshold, so that the values fill the memtable
	// rather than the value log.
	val := bytes.Repeat([]byte{'x'}, 900)
	older := func() []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var mems []string
		for _, e := range ents {
			if filepath.Ext(e.Name()) == ".mem" {
				mems = append(mems, e.Name())
			}
		}
		sort.Strings(mems)
		if len(mems) < 2 {
			return nil
		}
		return mems[:len(mems)-1]
	}
	for i := 0; ; i++ {
		if i > 2000 {
			t.Fatal("no memtable switch after 2,000 transactions of 50 values of 900 bytes (86 MiB)")
		}
		if err := s.UpdateBuffered(context.Background(), func(tx *Tx) error {
			for j := range 50 {
				if err := tx.PutStagedBytes(uint64(i), fmt.Sprint(j), val); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		old := older()
		if old == nil {
			continue
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		e := s.engine.(*badgerEngine)
		e.logsMu.Lock()
		defer e.logsMu.Unlock()
		for _, name := range old {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil && !e.syncedLogs[name] {
				t.Fatalf("Sync left the switched-out log %s unsynced", name)
			}
		}
		return
	}
}

// testFreedContentAndNodes: the records several nodes share. On a shared
// engine, the first reference on a freed blob drops its entry, and is
// refused while the entry is marked deleting; Badger, which no other
// process opens, keeps no such index.
func testFreedContentAndNodes(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	ctx := context.Background()
	if s.Shared() != c.shared() {
		t.Fatalf("Shared() = %v on %s", s.Shared(), c.engine)
	}
	freed := ContentKey{BackingID: 2, SHA256: bytes.Repeat([]byte{7}, 32)}
	deleting := ContentKey{BackingID: 2, SHA256: bytes.Repeat([]byte{8}, 32)}
	err := s.Update(ctx, func(tx *Tx) error {
		for _, n := range []Node{{ID: 9, Host: "h1", Heartbeat: 5}, {ID: 4, Host: "h2", Heartbeat: 6}} {
			if err := tx.PutNode(&n); err != nil {
				return err
			}
		}
		if err := tx.PutLeader(&Leader{Node: 4, Until: 100}); err != nil {
			return err
		}
		if err := tx.FreeContent(freed, 10); err != nil {
			return err
		}
		if err := tx.FreeContent(freed, 20); err != nil { // the earlier instant stands
			return err
		}
		return tx.PutFreedContent(deleting, &FreedContent{Since: 10, Deleting: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx, func(tx *Tx) error {
		nodes, err := tx.Nodes()
		if err != nil || len(nodes) != 2 || nodes[0].ID != 4 || nodes[1].Host != "h1" {
			t.Fatalf("nodes: %+v %v, want 4 then 9", nodes, err)
		}
		if l, err := tx.Leader(); err != nil || l.Node != 4 || l.Until != 100 {
			t.Fatalf("leader: %+v %v", l, err)
		}
		all, err := tx.FreedContents(0)
		if err != nil || len(all) != 2 || all[0].Since != 10 || all[0].Deleting || !all[1].Deleting {
			t.Fatalf("freed contents: %+v %v", all, err)
		}
		if one, err := tx.FreedContents(1); err != nil || len(one) != 1 {
			t.Fatalf("freed contents, limit 1: %+v %v", one, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	err = s.Update(ctx, func(tx *Tx) error {
		_, err := tx.AddContentRef(freed, 1, 3)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		_, err := tx.AddContentRef(deleting, 1, 3)
		return err
	})
	if c.shared() && !errors.Is(err, ErrContentDeleting) {
		t.Fatalf("first reference on a blob being deleted: %v, want ErrContentDeleting", err)
	}
	if !c.shared() && err != nil {
		t.Fatalf("first reference on Badger: %v", err)
	}
	err = s.View(ctx, func(tx *Tx) error {
		_, err := tx.FreedContentOf(freed)
		if c.shared() && !errors.Is(err, ErrNotFound) {
			t.Fatalf("freed entry of a blob referenced again: %v, want it dropped", err)
		}
		if _, err := tx.ContentRef(deleting); c.shared() && !errors.Is(err, ErrNotFound) {
			t.Fatalf("refused reference was stored: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx *Tx) error { return tx.DeleteNode(9) })
	if err == nil {
		err = s.View(ctx, func(tx *Tx) error {
			if _, err := tx.Node(9); !errors.Is(err, ErrNotFound) {
				t.Fatalf("deleted node: %v, want ErrNotFound", err)
			}
			return nil
		})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// testWatchSeesOthersOnly: a Store watching the catalog hears of what
// other processes commit to libraries, items and files, with the records
// before and after, and not of its own commits; on Badger, which no other
// process writes, Watch returns at once.
func testWatchSeesOthersOnly(t *testing.T, c *testCatalog) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watcher := c.open(t)
	defer watcher.Close()
	if !c.shared() {
		if err := watcher.Watch(ctx, func([]CatalogEvent) { t.Error("an event on an engine nobody else writes") }); err != nil {
			t.Fatal(err)
		}
		return
	}
	events := make(chan CatalogEvent, 100)
	done := make(chan error, 1)
	go func() {
		done <- watcher.Watch(ctx, func(evs []CatalogEvent) {
			for _, e := range evs {
				events <- e
			}
		})
	}()
	next := func(what string) CatalogEvent {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(10 * time.Second):
			t.Fatalf("no event for %s", what)
		}
		return CatalogEvent{}
	}
	update := func(s *Store, fn func(tx *Tx) error) {
		t.Helper()
		if err := s.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	// The watch starts at the revision it reads first: give it a moment,
	// then commit on the watcher itself, which it must not report.
	time.Sleep(200 * time.Millisecond)
	update(watcher, func(tx *Tx) error { return tx.PutLibrary(&Library{ID: 1, UUID: "own", Name: "Own"}) })
	other := c.open(t)
	defer other.Close()
	update(other, func(tx *Tx) error { return tx.PutLibrary(&Library{ID: 2, UUID: "l2", Name: "Theirs"}) })
	if e := next("a library created"); e.Resync || e.Library == nil || e.Library.Name != "Theirs" || e.PrevLibrary != nil {
		t.Fatalf("first event: %+v, want library Theirs created (and not the watcher's own Own)", e)
	}
	update(other, func(tx *Tx) error {
		if err := tx.PutItem(&Item{ID: 3, UUID: "i3", LibraryID: 2, Name: "item"}); err != nil {
			return err
		}
		return tx.PutTableFile(3, &File{ID: 4, ItemID: 3, Name: "a.iso", Size: 1})
	})
	got := map[string]bool{}
	for range 2 {
		switch e := next("an item and a file"); {
		case e.Item != nil && e.Item.Name == "item":
			got["item"] = true
		case e.File != nil && e.File.Name == "a.iso" && e.File.ItemID == 3:
			got["file"] = true
		default:
			t.Fatalf("unexpected event %+v", e)
		}
	}
	update(other, func(tx *Tx) error { return tx.DeleteFile(&Item{ID: 3}, "a.iso") })
	if e := next("a file deleted"); e.File != nil || e.PrevFile == nil || e.PrevFile.Name != "a.iso" || e.PrevFile.Size != 1 {
		t.Fatalf("delete event: %+v, want the file as it was", e)
	}
	update(other, func(tx *Tx) error {
		return tx.PutLibrary(&Library{ID: 2, UUID: "l2", Name: "Renamed"})
	})
	if e := next("a library renamed"); e.Library == nil || e.PrevLibrary == nil || e.PrevLibrary.Name != "Theirs" || e.Library.Name != "Renamed" {
		t.Fatalf("rename event: %+v", e)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return when its context ended")
	}
	if len(events) != 0 {
		t.Fatalf("%d events more than committed: %+v", len(events), <-events)
	}
}
