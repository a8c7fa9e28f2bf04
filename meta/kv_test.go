package meta

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The suite every engine passes. Badger runs always, in a temporary
// directory; etcd runs when CLFS_TEST_ETCD names its endpoints
// (comma-separated host:port), each test under its own random prefix,
// removed afterwards. Under CI (CI set) a missing CLFS_TEST_ETCD fails
// the etcd half: CI must never pass without it. testdata/services.sh
// starts a local cluster (README, "Catalog engines").
//
// Tests marked shared need two Stores on one catalog at once, which Badger
// (one process per directory) cannot be: they run on etcd only.
var engineSuite = []struct {
	name   string
	fn     func(t *testing.T, c *testCatalog)
	shared bool
}{
	{"IDsAreUniqueAcrossReopen", testIDsAreUniqueAcrossReopen, false},
	{"UpdateRetriesConflicts", testUpdateRetriesConflicts, false},
	{"UpdateGivesUpWithErrConflict", testUpdateGivesUpWithErrConflict, false},
	{"ContentRefDisappearsAtZero", testContentRefDisappearsAtZero, false},
	{"RecordsRoundTripAndIndexes", testRecordsRoundTripAndIndexes, false},
	{"DueExpiriesStopsAtNow", testDueExpiriesStopsAtNow, false},
	{"RecordCacheCopiesFiles", testRecordCacheCopiesFiles, false},
	{"ReadsOwnWrites", testReadsOwnWrites, false},
	{"ScanAcrossPages", testScanAcrossPages, false},
	{"ScanMergesPendingWrites", testScanMergesPendingWrites, false},
	{"ConflictRetriesOnce", testConflictRetriesOnce, false},
	{"CounterIsExact", testCounterIsExact, false},
	{"ContextStopsRetries", testContextStopsRetries, false},
	{"ContextStopsBeforeCommit", testContextStopsBeforeCommit, false},
	{"ViewIsASnapshot", testViewIsASnapshot, false},
	{"RecordCacheSeesOtherWriters", testRecordCacheSeesOtherWriters, true},
	{"CountersExactAcrossStores", testCountersExactAcrossStores, true},
	{"ViewRecentFollowsOthers", testViewRecentFollowsOthers, false},
	{"CountFiles", testCountFiles, false},
	{"ScanStoppedEarlyChecksWhatItRead", testScanStoppedEarlyChecksWhatItRead, true},
	{"ClientTokensExpire", testClientTokensExpire, false},
	{"DeleteSessionCascades", testDeleteSessionCascades, false},
	{"DeleteLargeSession", testDeleteLargeSession, false},
	{"Limits", testLimits, false},
	{"ConcurrentStoresShareIDs", testConcurrentStoresShareIDs, true},
	{"IndexesFollowRecords", testIndexesFollowRecords, false},
	{"DownloadSessionsByItem", testDownloadSessionsByItem, false},
	{"LongTransactionGetsItsTurn", testLongTransactionGetsItsTurn, false},
	{"FreedContentAndNodes", testFreedContentAndNodes, false},
	{"WatchSeesOthersOnly", testWatchSeesOthersOnly, false},
}

func TestEngines(t *testing.T) {
	t.Run("badger", func(t *testing.T) {
		for _, tc := range engineSuite {
			if tc.shared {
				continue
			}
			t.Run(tc.name, func(t *testing.T) {
				tc.fn(t, &testCatalog{engine: "badger", url: "badger://" + t.TempDir()})
			})
		}
	})
	t.Run("etcd", func(t *testing.T) {
		endpoints := testEtcdEndpoints(t)
		for _, tc := range engineSuite {
			t.Run(tc.name, func(t *testing.T) {
				tc.fn(t, newEtcdCatalog(t, endpoints))
			})
		}
	})
}

// testEtcdEndpoints returns CLFS_TEST_ETCD's endpoints, or skips the etcd
// tests, or under CI fails them.
func testEtcdEndpoints(t *testing.T) string {
	t.Helper()
	endpoints := os.Getenv("CLFS_TEST_ETCD")
	switch {
	case endpoints != "":
		return endpoints
	case os.Getenv("CI") != "":
		t.Fatal("CI is set but CLFS_TEST_ETCD is not: the etcd engine must be tested in CI " +
			"(start a cluster with `sh testdata/services.sh start` and export CLFS_TEST_ETCD)")
	default:
		t.Skip("CLFS_TEST_ETCD not set: etcd engine not tested (sh testdata/services.sh start; " +
			"export CLFS_TEST_ETCD=127.0.0.1:23790,127.0.0.1:23791,127.0.0.1:23792)")
	}
	return ""
}

// testCatalog is one test's catalog: every open opens the same one.
type testCatalog struct {
	engine string
	url    string
}

func (c *testCatalog) open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{URL: c.url})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// shared reports whether several Stores may have the catalog open at once
// (Badger locks its directory).
func (c *testCatalog) shared() bool { return c.engine == "etcd" }

// newEtcdCatalog is a catalog under a fresh random prefix, deleted when
// the test ends.
func newEtcdCatalog(t *testing.T, endpoints string) *testCatalog {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	prefix := "clfs-test/" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + hex.EncodeToString(b[:])
	url := "etcd://" + endpoints + "/" + prefix
	t.Cleanup(func() {
		s, err := Open(context.Background(), Options{URL: url})
		if err == nil {
			err = errors.Join(s.DropAll(context.Background()), s.Close())
		}
		if err != nil {
			t.Errorf("clean up %s: %v", prefix, err)
		}
	})
	return &testCatalog{engine: "etcd", url: url}
}

func mustNo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var bg = context.Background()

func testReadsOwnWrites(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		if err := tx.PutItem(&Item{ID: 4, Name: "four"}); err != nil {
			return err
		}
		it, err := tx.Item(4)
		if err != nil || it.Name != "four" {
			t.Errorf("pending item = %+v %v", it, err)
		}
		if err := tx.DeleteItem(4); err != nil {
			return err
		}
		if _, err := tx.Item(4); !errors.Is(err, ErrNotFound) {
			t.Errorf("pending delete: %v", err)
		}
		return tx.PutItem(&Item{ID: 4, Name: "again"})
	}))
	mustNo(t, s.View(bg, func(tx *Tx) error {
		it, err := tx.Item(4)
		if err != nil || it.Name != "again" {
			t.Errorf("committed item = %+v %v", it, err)
		}
		return nil
	}))
}

// putFiles commits n files of item in transactions of at most 100 keys,
// within etcd's 128 operations.
func putFiles(t *testing.T, s *Store, item uint64, n int) {
	t.Helper()
	for i := 0; i < n; i += 100 {
		mustNo(t, s.Update(bg, func(tx *Tx) error {
			for j := i; j < min(i+100, n); j++ {
				if err := tx.PutTableFile(item, &File{ItemID: item, Name: fmt.Sprintf("f%05d", j), Size: int64(j)}); err != nil {
					return err
				}
			}
			return nil
		}))
	}
}

// A scan longer than the etcd engine's page sees every key once, in order.
func testScanAcrossPages(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	n := 2*etcdScanPage + 37
	putFiles(t, s, 9, n)
	putFiles(t, s, 10, 3) // the next item's files: outside the range
	mustNo(t, s.View(bg, func(tx *Tx) error {
		fs, err := tx.Files(&Item{ID: 9})
		if err != nil {
			return err
		}
		if len(fs) != n {
			t.Fatalf("%d files, want %d", len(fs), n)
		}
		for i, f := range fs {
			if f.Name != fmt.Sprintf("f%05d", i) || f.Size != int64(i) {
				t.Fatalf("file %d = %+v", i, f)
			}
		}
		// Stopping early ends the scan.
		seen := 0
		err = tx.scan(fileTablePrefix(9), true, func(k, _ []byte) error {
			if seen++; seen == etcdScanPage+1 {
				return errStop
			}
			return nil
		})
		if err != nil || seen != etcdScanPage+1 {
			t.Errorf("stopped scan: %d keys, %v", seen, err)
		}
		return nil
	}))
}

// A scan inside a read-write transaction sees its own puts and deletes in
// key order, on every page. (The transaction reads too many keys to
// commit on etcd, so it ends without committing.)
func testScanMergesPendingWrites(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	n := etcdScanPage + 10
	putFiles(t, s, 9, n)
	errLook := errors.New("only looking")
	err := s.UpdateBuffered(bg, func(tx *Tx) error {
		for _, name := range []string{"a-first", "f00003x", "f00600x", "z-last"} {
			if err := tx.PutTableFile(9, &File{ItemID: 9, Name: name, Size: -1}); err != nil {
				return err
			}
		}
		for _, name := range []string{"f00000", "f00511", "f00512"} {
			if err := tx.DeleteFile(&Item{ID: 9}, name); err != nil {
				return err
			}
		}
		if err := tx.PutTableFile(9, &File{ItemID: 9, Name: "f00100", Size: -2}); err != nil {
			return err
		}
		fs, err := tx.Files(&Item{ID: 9})
		if err != nil {
			return err
		}
		if len(fs) != n+4-3 {
			t.Errorf("%d files, want %d", len(fs), n+1)
		}
		byName := map[string]int64{}
		for i, f := range fs {
			if i > 0 && fs[i-1].Name >= f.Name {
				t.Errorf("out of order: %q before %q", fs[i-1].Name, f.Name)
			}
			byName[f.Name] = f.Size
		}
		for name, size := range map[string]int64{"a-first": -1, "f00003x": -1, "f00600x": -1, "z-last": -1, "f00100": -2, "f00001": 1} {
			if got, ok := byName[name]; !ok || got != size {
				t.Errorf("%s: size %d, present %v; want %d", name, got, ok, size)
			}
		}
		for _, name := range []string{"f00000", "f00511", "f00512"} {
			if _, ok := byName[name]; ok {
				t.Errorf("deleted %s listed", name)
			}
		}
		return errLook
	})
	if !errors.Is(err, errLook) {
		t.Fatal(err)
	}
}

// Two transactions on one key: the one that loses retries, and both
// increments count.
func testConflictRetriesOnce(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	key := ContentKey{BackingID: 1, SHA256: bytes.Repeat([]byte{3}, 32)}
	read := make(chan struct{})
	other := make(chan error)
	go func() {
		<-read
		other <- s.Update(bg, func(tx *Tx) error { _, err := tx.AddContentRef(key, 10, 1); return err })
	}()
	rounds := 0
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		rounds++
		if _, err := tx.ContentRef(key); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if rounds == 1 {
			close(read)
			if err := <-other; err != nil {
				return err
			}
		}
		_, err := tx.AddContentRef(key, 1, 1)
		return err
	}))
	if rounds != 2 {
		t.Errorf("%d rounds, want 2 (one conflict, one retry)", rounds)
	}
	mustNo(t, s.View(bg, func(tx *Tx) error {
		r, err := tx.ContentRef(key)
		if err == nil && r.Refs != 11 {
			t.Errorf("refs = %d, want 11", r.Refs)
		}
		return err
	}))
}

// Concurrent increments of one counter lose none.
func testCounterIsExact(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	key := []byte("qtest")
	const workers, each = 6, 20
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if err := runTxn(bg, s.engine, readWrite, &s.turns, func(t kvTxn) error { _, err := incrBy(t, key, 2); return err }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var got int64
	mustNo(t, runTxn(bg, s.engine, readWrite, &s.turns, func(t kvTxn) (err error) { got, err = incrBy(t, key, -1); return err }))
	if want := int64(workers*each*2 - 1); got != want {
		t.Errorf("counter = %d, want %d", got, want)
	}
}

// A context that ends stops a transaction that keeps conflicting, and
// nothing of it is committed; a View under an ended context does not run.
func testContextStopsRetries(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	key := ContentKey{BackingID: 4, SHA256: bytes.Repeat([]byte{4}, 32)}
	ctx, cancel := context.WithCancel(bg)
	rounds := 0
	err := s.Update(ctx, func(tx *Tx) error {
		rounds++
		if _, err := tx.AddContentRef(key, 100, 1); err != nil {
			return err
		}
		if err := s.UpdateBuffered(bg, func(o *Tx) error { _, err := o.AddContentRef(key, 1, 1); return err }); err != nil {
			return err
		}
		if rounds == 3 {
			cancel() // before the third commit
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if rounds != 3 {
		t.Errorf("%d rounds, want 3", rounds)
	}
	mustNo(t, s.View(bg, func(tx *Tx) error {
		r, err := tx.ContentRef(key)
		if err == nil && r.Refs != int64(rounds) {
			t.Errorf("refs = %d, want %d (the other writer's only)", r.Refs, rounds)
		}
		return err
	}))
	ran := false
	if err := s.View(ctx, func(*Tx) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Errorf("view under a cancelled context: %v, ran %v", err, ran)
	}
}

// A context that ends while a transaction runs stops it before its
// commit, though nothing conflicts: the caller gets ctx's error, and
// that means nothing was committed (no commit in flight is abandoned).
func testContextStopsBeforeCommit(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	ctx, cancel := context.WithCancel(bg)
	rounds := 0
	err := s.Update(ctx, func(tx *Tx) error {
		rounds++
		cancel()
		return tx.PutItem(&Item{ID: 7, Name: "late"})
	})
	if !errors.Is(err, context.Canceled) || rounds != 1 {
		t.Fatalf("got %v after %d rounds, want context.Canceled after 1", err, rounds)
	}
	mustNo(t, s.View(bg, func(tx *Tx) error {
		if _, err := tx.Item(7); !errors.Is(err, ErrNotFound) {
			t.Errorf("item of a cancelled transaction: %v, want ErrNotFound", err)
		}
		return nil
	}))
}

// A View reads one state of the catalog, even while writers commit. On
// etcd its body may run again (a read from the node's cache turned out
// stale): the run whose answer counts still saw one state.
func testViewIsASnapshot(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	put := func(a, b string) error {
		return s.Update(bg, func(tx *Tx) error {
			if err := tx.PutItem(&Item{ID: 1, Name: a}); err != nil {
				return err
			}
			return tx.PutItem(&Item{ID: 2, Name: b})
		})
	}
	mustNo(t, put("a1", "b1"))
	var a, b *Item
	runs := 0
	mustNo(t, s.View(bg, func(tx *Tx) (err error) {
		runs++
		if a, err = tx.Item(1); err != nil {
			return err
		}
		if runs == 1 {
			if err := put("a2", "b2"); err != nil {
				return err
			}
		}
		b, err = tx.Item(2)
		return err
	}))
	if a.Name[1] != b.Name[1] {
		t.Errorf("view saw %q and %q, want a1 and b1, or a2 and b2", a.Name, b.Name)
	}
	if !c.shared() && (a.Name != "a1" || runs != 1) {
		t.Errorf("view saw %q in %d runs, want a1 in one: a Badger view is one snapshot", a.Name, runs)
	}
}

// A record another Store changed is read fresh, never from a cache: a
// View that starts after the other Store's commit returned sees it (etcd:
// a key this node holds in its cache, kv_etcd_cache.go, is checked with
// the cluster before the View answers), and so does a key this node knew
// to be absent. A hundred rounds: when the check went to a lagging
// member, forty failed two times in three.
func testRecordCacheSeesOtherWriters(t *testing.T, c *testCatalog) {
	a, b := c.open(t), c.open(t)
	defer a.Close()
	defer b.Close()
	read := func(s *Store) string {
		var name string
		mustNo(t, s.View(bg, func(tx *Tx) error {
			it, err := tx.Item(1)
			if err == nil {
				name = it.Name
			}
			return err
		}))
		return name
	}
	for i := range 100 {
		name := fmt.Sprintf("name-%d", i)
		mustNo(t, b.Update(bg, func(tx *Tx) error { return tx.PutItem(&Item{ID: 1, Name: name}) }))
		if got := read(a); got != name {
			t.Fatalf("round %d: other store reads %q, want %q", i, got, name)
		}
		// Absent on a (read, so known absent), then created on b.
		id := uint64(100 + i)
		mustNo(t, a.View(bg, func(tx *Tx) error {
			if _, err := tx.Item(id); !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("item %d before it is made: %v", id, err)
			}
			return nil
		}))
		mustNo(t, b.Update(bg, func(tx *Tx) error { return tx.PutItem(&Item{ID: id, Name: name}) }))
		mustNo(t, a.View(bg, func(tx *Tx) error {
			_, err := tx.Item(id)
			return err
		}))
	}
}

// Two Stores adding to one counter, each from what its cache holds:
// every increment counts once (a stale read loses its commit and runs
// again).
func testCountersExactAcrossStores(t *testing.T, c *testCatalog) {
	stores := []*Store{c.open(t), c.open(t)}
	defer stores[0].Close()
	defer stores[1].Close()
	key := []byte("qshared")
	const each = 40
	var wg sync.WaitGroup
	for _, s := range stores {
		for range 2 {
			wg.Go(func() {
				for range each {
					if err := runTxn(bg, s.engine, readWrite, &s.turns, func(t kvTxn) error { _, err := incrBy(t, key, 1); return err }); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for _, s := range stores {
		var got int64
		mustNo(t, runTxn(bg, s.engine, readOnly, nil, func(t kvTxn) error {
			v, _, err := t.get(key)
			if err == nil {
				got, err = counterValue(key, v)
			}
			return err
		}))
		if want := int64(len(stores) * 2 * each); got != want {
			t.Errorf("counter = %d, want %d", got, want)
		}
	}
}

// ViewRecent sees the node's own commits at once and other nodes'
// within the watch's delay (on Badger it is View).
func testViewRecentFollowsOthers(t *testing.T, c *testCatalog) {
	a := c.open(t)
	defer a.Close()
	b := a
	if c.shared() {
		b = c.open(t)
		defer b.Close()
	}
	recent := func(s *Store) string {
		var name string
		mustNo(t, s.ViewRecent(bg, func(tx *Tx) error {
			it, err := tx.Item(1)
			if err == nil {
				name = it.Name
			}
			return err
		}))
		return name
	}
	for i := range 10 {
		name := fmt.Sprintf("own-%d", i)
		mustNo(t, a.Update(bg, func(tx *Tx) error { return tx.PutItem(&Item{ID: 1, Name: name}) }))
		if got := recent(a); got != name {
			t.Fatalf("ViewRecent after the store's own commit: %q, want %q", got, name)
		}
		name = fmt.Sprintf("other-%d", i)
		mustNo(t, b.Update(bg, func(tx *Tx) error { return tx.PutItem(&Item{ID: 1, Name: name}) }))
		deadline := time.Now().Add(5 * time.Second)
		for recent(a) != name {
			if time.Now().After(deadline) {
				t.Fatalf("ViewRecent still reads %q 5 s after another store committed %q", recent(a), name)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func testClientTokensExpire(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		if err := tx.PutClientToken('L', "tok", &ClientToken{UUID: "u1", SpecHash: "h"}); err != nil {
			return err
		}
		// A token that expired an hour ago, as if put a day ago.
		past := time.Now().Add(-time.Hour).UnixNano()
		if err := tx.put(clientTokenKey('L', "old"), &ClientToken{UUID: "u0", Expires: past}); err != nil {
			return err
		}
		return tx.set(clientTokenExpiryKey(past, 'L', "old"), nil)
	}))
	mustNo(t, s.View(bg, func(tx *Tx) error {
		if ct, err := tx.ClientToken('L', "tok"); err != nil || ct.UUID != "u1" {
			t.Errorf("token = %+v %v", ct, err)
		}
		if _, err := tx.ClientToken('L', "old"); !errors.Is(err, ErrNotFound) {
			t.Errorf("expired token: %v", err)
		}
		return nil
	}))
	// The next put removes the expired token and its index entry.
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		return tx.PutClientToken('I', "tok2", &ClientToken{UUID: "u2"})
	}))
	mustNo(t, s.View(bg, func(tx *Tx) error {
		if _, err := tx.getRaw(clientTokenKey('L', "old")); !errors.Is(err, ErrNotFound) {
			t.Errorf("expired token record left: %v", err)
		}
		n := 0
		err := tx.scan(clientTokenExpiryPrefix(), true, func(k, _ []byte) error { n++; return nil })
		if n != 2 {
			t.Errorf("%d expiry index entries, want 2", n)
		}
		return err
	}))
}

// A session's records go with it in one transaction whatever their
// number: on etcd the files of a session are one range deleted, not one
// operation each (128 at most).
func testDeleteLargeSession(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		return tx.PutUpdateSession(&UpdateSession{SessionHeader: SessionHeader{ID: 7, ItemID: 70}})
	}))
	for i := 0; i < 300; i += 40 {
		mustNo(t, s.Update(bg, func(tx *Tx) error {
			for j := i; j < i+40; j++ {
				name := fmt.Sprintf("f%03d", j)
				if err := tx.PutUpdateSessionFile(&UpdateSessionFile{SessionID: 7, Name: name, Inline: true}); err != nil {
					return err
				}
				if err := tx.PutStagedBytes(7, name, []byte("bytes")); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		if err := tx.DeleteUpdateSession(7); err != nil {
			return err
		}
		if fs, err := tx.UpdateSessionFiles(7); len(fs) != 0 || err != nil {
			t.Errorf("the deleting transaction sees %d files, %v", len(fs), err)
		}
		if _, err := tx.StagedBytes(7, "f100"); !errors.Is(err, ErrNotFound) {
			t.Errorf("the deleting transaction reads staged bytes: %v", err)
		}
		return nil
	}))
	mustNo(t, s.View(bg, func(tx *Tx) error {
		fs, err := tx.UpdateSessionFiles(7)
		_, errBytes := tx.StagedBytes(7, "f299")
		if len(fs) != 0 || err != nil || !errors.Is(errBytes, ErrNotFound) {
			t.Errorf("left after the delete: %d files, %v, staged bytes %v", len(fs), err, errBytes)
		}
		return nil
	}))
}

func testDeleteSessionCascades(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		if err := tx.SetActiveUpdate(70, 7); err != nil {
			return err
		}
		if err := tx.SetActiveUpdate(80, 8); err != nil {
			return err
		}
		for _, id := range []uint64{7, 8} {
			if err := tx.PutUpdateSession(&UpdateSession{SessionHeader: SessionHeader{ID: id, ItemID: id * 10}}); err != nil {
				return err
			}
			for _, name := range []string{"a", "b"} {
				if err := tx.PutUpdateSessionFile(&UpdateSessionFile{SessionID: id, Name: name, Inline: true}); err != nil {
					return err
				}
				if err := tx.PutStagedBytes(id, name, []byte("bytes")); err != nil {
					return err
				}
			}
		}
		return nil
	}))
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		if err := tx.PutUpdateSessionFile(&UpdateSessionFile{SessionID: 7, Name: "c"}); err != nil {
			return err
		}
		return tx.DeleteUpdateSession(7) // with a pending file of its own
	}))
	mustNo(t, s.View(bg, func(tx *Tx) error {
		for _, id := range []uint64{7, 8} {
			fs, err := tx.UpdateSessionFiles(id)
			if err != nil {
				return err
			}
			_, errSession := tx.UpdateSession(id)
			_, errBytes := tx.StagedBytes(id, "a")
			if id == 7 && (len(fs) != 0 || !errors.Is(errSession, ErrNotFound) || !errors.Is(errBytes, ErrNotFound)) {
				t.Errorf("session 7 left: %d files, %v, %v", len(fs), errSession, errBytes)
			}
			if id == 8 && (len(fs) != 2 || errSession != nil || errBytes != nil) {
				t.Errorf("session 8 changed: %d files, %v, %v", len(fs), errSession, errBytes)
			}
		}
		if _, err := tx.ActiveUpdate(70); !errors.Is(err, ErrNotFound) {
			t.Errorf("the deleted session's lock: %v", err)
		}
		if n, err := tx.ActiveUpdate(80); err != nil || n != 8 {
			t.Errorf("the other session's lock: %d %v", n, err)
		}
		return nil
	}))
}

// etcd takes at most 128 keys written (or read, in a read-write
// transaction) and 1.5 MiB per commit; Badger, as the catalog configures
// it, about 1.2 MiB (15% of a memtable) of keys and values kept in the
// tree, values from 1 KiB on counting only as a pointer into the value
// log. Beyond: ErrTooLarge, nothing committed.
func testLimits(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	limited := c.engine == "etcd"
	check := func(what string, limited bool, err error) {
		t.Helper()
		switch {
		case limited && !errors.Is(err, ErrTooLarge):
			t.Errorf("%s: got %v, want ErrTooLarge", what, err)
		case !limited && err != nil:
			t.Errorf("%s: %v", what, err)
		}
	}
	check("129 files", limited, s.Update(bg, func(tx *Tx) error {
		for i := range etcdDefaultMaxOps + 1 {
			if err := tx.PutTableFile(1, &File{ItemID: 1, Name: fmt.Sprint(i)}); err != nil {
				return err
			}
		}
		return nil
	}))
	check("1.6 MiB of staged bytes in 25 values", limited, s.Update(bg, func(tx *Tx) error {
		for i := range 25 {
			if err := tx.PutStagedBytes(2, fmt.Sprint(i), bytes.Repeat([]byte{'x'}, 64<<10)); err != nil {
				return err
			}
		}
		return nil
	}))
	check("1.8 MiB of staged bytes in 2,000 values", true, s.Update(bg, func(tx *Tx) error {
		for i := range 2000 {
			if err := tx.PutStagedBytes(4, fmt.Sprint(i), bytes.Repeat([]byte{'x'}, 900)); err != nil {
				return err
			}
		}
		return nil
	}))
	putFiles(t, s, 3, etcdDefaultMaxOps+1)
	check("a read-write transaction that reads 129 keys", limited, s.Update(bg, func(tx *Tx) error {
		if _, err := tx.Files(&Item{ID: 3}); err != nil {
			return err
		}
		return tx.PutItem(&Item{ID: 3})
	}))
	mustNo(t, s.View(bg, func(tx *Tx) error {
		fs, err := tx.Files(&Item{ID: 1})
		if limited && len(fs) != 0 {
			t.Errorf("a refused commit left %d files", len(fs))
		}
		if _, err := tx.Files(&Item{ID: 3}); err != nil { // a View reads any number
			return err
		}
		return err
	}))
	// A megabyte of inline content in one commit fits both.
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		for i := range 16 {
			if _, err := tx.AddInlineContent(ContentKey{BackingID: 1, SHA256: bytes.Repeat([]byte{byte(i)}, 32)}, bytes.Repeat([]byte{'y'}, 64<<10)); err != nil {
				return err
			}
		}
		return nil
	}))
}

// Stores that share a catalog (nodes) never hand out the same ID.
func testConcurrentStoresShareIDs(t *testing.T, c *testCatalog) {
	stores := []*Store{c.open(t), c.open(t), c.open(t)}
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var dup atomic.Bool
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Go(func() {
			for range 2000 {
				id, err := s.NextID(bg)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if id == 0 || seen[id] {
					dup.Store(true)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, s := range stores {
		mustNo(t, s.Close())
	}
	if dup.Load() {
		t.Fatal("an ID was handed out twice, or zero")
	}
}

// Names, API ids and expiry entries are kept by the records' own Put and
// Delete: a rename moves the name, a rename over another record (deleted
// first, in the same transaction) keeps the new owner's entry, a delete
// takes them all.
func testIndexesFollowRecords(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	check := func(what string, got uint64, err error, want uint64) {
		t.Helper()
		if want == 0 && !errors.Is(err, ErrNotFound) || want != 0 && (err != nil || got != want) {
			t.Errorf("%s = %d %v, want %d", what, got, err, want)
		}
	}
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		if err := tx.PutLibrary(&Library{ID: 1, UUID: "lib-1", Name: "Lib"}); err != nil {
			return err
		}
		if err := tx.PutItem(&Item{ID: 2, UUID: "item-2", LibraryID: 1, Name: "a"}); err != nil {
			return err
		}
		if err := tx.PutItem(&Item{ID: 3, UUID: "item-3", LibraryID: 1, Name: "b"}); err != nil {
			return err
		}
		return tx.PutUpdateSession(&UpdateSession{SessionHeader: SessionHeader{ID: 4, UUID: "s-4", ItemID: 2, ExpirationTime: 100}})
	}))
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		// Rename the library (case only, then for real), b over a.
		if err := tx.PutLibrary(&Library{ID: 1, UUID: "lib-1", Name: "LIB"}); err != nil {
			return err
		}
		if err := tx.PutLibrary(&Library{ID: 1, UUID: "lib-1", Name: "Renamed"}); err != nil {
			return err
		}
		if err := tx.DeleteItem(2); err != nil {
			return err
		}
		if err := tx.PutItem(&Item{ID: 3, UUID: "item-3", LibraryID: 1, Name: "A"}); err != nil {
			return err
		}
		return tx.PutUpdateSession(&UpdateSession{SessionHeader: SessionHeader{ID: 4, UUID: "s-4", ItemID: 2, ExpirationTime: 200}})
	}))
	mustNo(t, s.View(bg, func(tx *Tx) error {
		id, err := tx.LibraryIDByName("lib")
		check("old library name", id, err, 0)
		id, err = tx.LibraryIDByName("renamed")
		check("new library name", id, err, 1)
		id, err = tx.ItemIDByName(1, "a")
		check("item a", id, err, 3)
		id, err = tx.ItemIDByName(1, "b")
		check("item b", id, err, 0)
		id, err = tx.ResolveUUID("item-2", ItemObject)
		check("deleted item's uuid", id, err, 0)
		id, err = tx.ResolveUUID("item-3", ItemObject)
		check("item-3", id, err, 3)
		ids, err := tx.ItemIDs(1)
		if err != nil || len(ids) != 1 || ids[0] != 3 {
			t.Errorf("items of the library: %v %v", ids, err)
		}
		due, err := tx.DueExpiries(1000)
		if err != nil || len(due) != 1 || due[0].At != 200 || due[0].ID != 4 {
			t.Errorf("expiry entries %+v %v, want one at 200", due, err)
		}
		return nil
	}))
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		if err := tx.DeleteUpdateSession(4); err != nil {
			return err
		}
		if err := tx.DeleteItem(3); err != nil {
			return err
		}
		return tx.DeleteLibrary(1)
	}))
	mustNo(t, s.View(bg, func(tx *Tx) error {
		for _, p := range [][]byte{{kindLibraryName}, {kindItemName}, {kindUUID}, {kindExpiry}} {
			if err := tx.scan(p, true, func(k, _ []byte) error { t.Errorf("left after delete: %q", k); return nil }); err != nil {
				return err
			}
		}
		return nil
	}))
}

// Download sessions are indexed by item; a catalog written before the
// index gets it at Open.
func testDownloadSessionsByItem(t *testing.T, c *testCatalog) {
	s := c.open(t)
	list := func(item uint64) string {
		t.Helper()
		var ids []uint64
		mustNo(t, s.View(bg, func(tx *Tx) error {
			ds, err := tx.DownloadSessionsOfItem(item)
			for _, d := range ds {
				ids = append(ids, d.ID)
			}
			return err
		}))
		return fmt.Sprint(ids)
	}
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		for id, item := range map[uint64]uint64{10: 1, 11: 2, 12: 1} {
			if err := tx.PutDownloadSession(&DownloadSession{SessionHeader: SessionHeader{ID: id, ItemID: item}}); err != nil {
				return err
			}
		}
		return nil
	}))
	if got := list(1); got != "[10 12]" {
		t.Errorf("item 1: %s", got)
	}
	mustNo(t, s.Update(bg, func(tx *Tx) error {
		if err := tx.PutDownloadSession(&DownloadSession{SessionHeader: SessionHeader{ID: 12, ItemID: 1, State: "CANCELED"}}); err != nil {
			return err
		}
		if err := tx.DeleteDownloadSession(10); err != nil {
			return err
		}
		// A session as a release before the index wrote it.
		if err := tx.put(downloadKey(13), &DownloadSession{SessionHeader: SessionHeader{ID: 13, ItemID: 2}}); err != nil {
			return err
		}
		return tx.del(formatKey("downloads-by-item"))
	}))
	if got := list(1); got != "[12]" {
		t.Errorf("item 1 after a delete: %s", got)
	}
	if got := list(2); got != "[11]" {
		t.Errorf("item 2 before the upgrade: %s", got)
	}
	mustNo(t, s.Close())
	s = c.open(t)
	defer s.Close()
	if got := list(2); got != "[11 13]" {
		t.Errorf("item 2 after the upgrade: %s", got)
	}
}

// A long read-write transaction on a key that short ones hammer in a loop
// still commits: after losing a few rounds it gets a quiet turn.
func testLongTransactionGetsItsTurn(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	key := ContentKey{BackingID: 5, SHA256: bytes.Repeat([]byte{5}, 32)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.UpdateBuffered(bg, func(tx *Tx) error { _, err := tx.AddContentRef(key, 1, 1); return err }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	rounds := 0
	err := s.Update(bg, func(tx *Tx) error {
		rounds++
		if _, err := tx.ContentRef(key); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		time.Sleep(5 * time.Millisecond) // a long transaction
		_, err := tx.AddContentRef(key, 1000, 1)
		return err
	})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("after %d rounds: %v", rounds, err)
	}
	t.Logf("committed in %d rounds", rounds)
}

// CountFiles counts what AllFiles lists, across items and scan pages.
func testCountFiles(t *testing.T, c *testCatalog) {
	s := c.open(t)
	defer s.Close()
	for batch := range 6 {
		mustNo(t, s.Update(bg, func(tx *Tx) error {
			for i := range 100 {
				f := &File{ID: uint64(batch*100 + i + 1), ItemID: uint64(1 + i%3), Name: fmt.Sprintf("f%03d-%d", i, batch)}
				if err := tx.PutTableFile(f.ItemID, f); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	mustNo(t, s.Update(bg, func(tx *Tx) error { return tx.DeleteFile(&Item{ID: 1}, "f000-0") }))
	mustNo(t, s.View(bg, func(tx *Tx) error {
		n, err := tx.CountFiles()
		if err != nil {
			return err
		}
		all, err := tx.AllFiles()
		if err != nil {
			return err
		}
		if n != 599 || len(all) != 599 {
			t.Errorf("CountFiles %d, AllFiles %d, want 599", n, len(all))
		}
		return nil
	}))
}

// A scan its caller stopped early (FirstItemIDs, a sweep's batch) is
// checked at commit only as far as it read: a name added after that
// point does not make the transaction run again, one added before does.
// (etcd walks every key of a compared range: checking the whole rest of
// a library made deleting 10,000 items quadratic.)
func testScanStoppedEarlyChecksWhatItRead(t *testing.T, c *testCatalog) {
	a, b := c.open(t), c.open(t)
	defer a.Close()
	defer b.Close()
	mustNo(t, a.Update(bg, func(tx *Tx) error {
		for _, name := range []string{"b", "d", "f"} {
			if err := tx.PutItem(&Item{ID: uint64(name[0]), LibraryID: 7, Name: name}); err != nil {
				return err
			}
		}
		return nil
	}))
	for _, tc := range []struct {
		other    string
		wantRuns int
	}{{"e", 1}, {"a", 2}} {
		runs := 0
		mustNo(t, a.Update(bg, func(tx *Tx) error {
			runs++
			ids, err := tx.FirstItemIDs(7, 1)
			if err != nil || len(ids) != 1 {
				return fmt.Errorf("first item: %v, %v", ids, err)
			}
			if runs == 1 {
				if err := b.Update(bg, func(tx *Tx) error {
					return tx.PutItem(&Item{ID: uint64(tc.other[0]), LibraryID: 7, Name: tc.other})
				}); err != nil {
					return err
				}
			}
			return tx.PutItem(&Item{ID: 99, LibraryID: 8, Name: "marker-" + tc.other})
		}))
		if runs != tc.wantRuns {
			t.Errorf("another store adds %q while the first item is read: %d runs, want %d", tc.other, runs, tc.wantRuns)
		}
	}
}
