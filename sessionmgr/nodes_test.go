package sessionmgr

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"clfs/meta"
)

// Several nodes on one catalog: two or three Managers on their own homes
// share a catalog on the real etcd cluster of CLFS_TEST_ETCD (a fresh
// prefix per test) and one storage directory, and a FakeClock, so that a
// node's lease lapses when the test says. Nothing runs in the background:
// a test calls NodeTick where the node's goroutine would.

// sharedCatalog returns an etcd catalog URL under a fresh prefix, dropped
// when the test ends. Without CLFS_TEST_ETCD the test is skipped, loudly,
// except under CI, where it fails.
func sharedCatalog(t *testing.T) string {
	t.Helper()
	endpoints := os.Getenv("CLFS_TEST_ETCD")
	if endpoints == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but CLFS_TEST_ETCD is not: the multi-node tests need a real etcd cluster " +
				"(sh testdata/services.sh start; export $(sh testdata/services.sh env))")
		}
		t.Skip("CLFS_TEST_ETCD not set: multi-node tests NOT run (sh testdata/services.sh start; " +
			"export $(sh testdata/services.sh env))")
	}
	return freshCatalog(t, "etcd://"+endpoints, "nodes")
}

type cluster struct {
	t       *testing.T
	ctx     context.Context
	url     string
	clock   *FakeClock
	storage string // the storage directory every node reaches
	opts    Options
}

const (
	testLease = 30 * time.Second
	testGrace = 10 * time.Minute
)

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t, ctx: context.Background(), url: sharedCatalog(t), clock: NewFakeClock(testEpoch), storage: t.TempDir()}
	c.opts = Options{
		Meta: c.url, Clock: c.clock, ReapInterval: -1, SessionTimeout: testTimeout,
		InlineLimit: -1, // blob files, which the nodes share
		NodeLease:   testLease, ContentGrace: testGrace,
		Logger: slog.New(slog.DiscardHandler),
	}
	return c
}

// node opens a Manager on home (a fresh one if ""), closed at the end of
// the test unless the test closed it.
func (c *cluster) node(home string) (*Manager, string) {
	c.t.Helper()
	if home == "" {
		home = c.t.TempDir()
	}
	o := c.opts
	o.Home, o.NodeAddr = home, "test:"+filepath.Base(home)
	m, err := Open(o)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { m.Close() })
	return m, home
}

func (c *cluster) must(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
}

// item creates a library on the shared storage and an item in it.
func (c *cluster) item(m *Manager) string {
	c.t.Helper()
	lib, err := m.CreateLibrary(c.ctx, LibraryCreateSpec{Name: "lib", StorageDir: c.storage}, "")
	c.must(err)
	item, err := m.CreateItem(c.ctx, ItemCreateSpec{LibraryID: lib, Name: "item"}, "")
	c.must(err)
	return item
}

func (c *cluster) write(m *Manager, item, name, data string) {
	c.t.Helper()
	d, err := m.CreateFile(c.ctx, item, name, Posix{Mode: 0o644})
	if KindOf(err) == KindAlreadyExists {
		if d, err = m.OpenDraft(c.ctx, item, name); err == nil {
			err = d.Truncate(c.ctx, 0)
		}
	}
	c.must(err)
	_, err = d.WriteAt(c.ctx, []byte(data), 0)
	c.must(err)
	c.must(d.Commit(c.ctx))
	c.must(d.Close(c.ctx))
}

func (c *cluster) read(m *Manager, item, name string) string {
	c.t.Helper()
	r, err := m.OpenFileReader(c.ctx, item, name)
	c.must(err)
	defer r.Close()
	b, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	c.must(err)
	return string(b)
}

func (c *cluster) blob(data string) string {
	sum := sha256.Sum256([]byte(data))
	return contentPath(c.storage, sum[:])
}

func nodeByID(t *testing.T, nodes []NodeInfo, id uint64) NodeInfo {
	t.Helper()
	for _, n := range nodes {
		if n.ID == id {
			return n
		}
	}
	t.Fatalf("node %d not listed: %+v", id, nodes)
	return NodeInfo{}
}

func TestNodesRegisterAndList(t *testing.T) {
	c := newCluster(t)
	a, homeA := c.node("")
	b, _ := c.node("")
	if a.nodeID == b.nodeID || a.nodeID == 0 || b.nodeID == 0 {
		t.Fatalf("node ids %d and %d: want two distinct non-zero ids", a.nodeID, b.nodeID)
	}
	if !a.shared || !b.shared {
		t.Fatal("an etcd catalog is not seen as shared")
	}
	c.must(a.NodeTick(c.ctx)) // a takes the leader's lease
	c.must(b.NodeTick(c.ctx))
	item := c.item(a)
	s, err := b.CreateUpdateSession(c.ctx, UpdateSessionCreateSpec{LibraryItemID: item}, "")
	c.must(err)

	nodes, err := b.Nodes(c.ctx)
	c.must(err)
	if len(nodes) != 2 {
		t.Fatalf("%d nodes listed, want 2: %+v", len(nodes), nodes)
	}
	na, nb := nodeByID(t, nodes, a.nodeID), nodeByID(t, nodes, b.nodeID)
	if na.State != "up" || nb.State != "up" || !na.Leader || nb.Leader || na.Self || !nb.Self {
		t.Fatalf("want both up, a the leader, b itself: a %+v, b %+v", na, nb)
	}
	if na.Home != homeA || na.Addr != "test:"+filepath.Base(homeA) || na.PID != os.Getpid() || na.Version == "" {
		t.Fatalf("a's record: %+v", na)
	}
	if nb.UpdateSessions != 1 || na.UpdateSessions != 0 {
		t.Fatalf("active update sessions: a %d, b %d; want 0 and 1", na.UpdateSessions, nb.UpdateSessions)
	}

	// One home is one node: a second process on it is refused.
	o := c.opts
	o.Home = homeA
	if m, err := Open(o); err == nil {
		m.Close()
		t.Fatal("a second Open of a home in use succeeded")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open of a home in use: %v, want it to say the home is in use", err)
	}

	// A clean stop removes the record of a node that holds no session;
	// the node id stays with the home.
	id := a.nodeID
	c.must(a.Close())
	nodes, err = b.Nodes(c.ctx)
	c.must(err)
	if len(nodes) != 1 || nodes[0].ID != b.nodeID {
		t.Fatalf("after a's clean stop: %+v, want b only", nodes)
	}
	a, _ = c.node(homeA)
	if a.nodeID != id {
		t.Fatalf("reopened home has node id %d, want %d", a.nodeID, id)
	}
	c.must(b.CancelUpdateSession(c.ctx, s))
}

// TestNodeLeaseLapse: a node that stops heartbeating has its ACTIVE
// sessions failed by the leader once its lease lapses, and not before;
// what it committed stays; it cleans its staging when it comes back.
func TestNodeLeaseLapse(t *testing.T) {
	c := newCluster(t)
	a, _ := c.node("")
	b, homeB := c.node("")
	item := c.item(a)
	c.write(b, item, "committed", "committed by b")

	// b dies with an upload in progress and a download session open.
	up, err := b.CreateUpdateSession(c.ctx, UpdateSessionCreateSpec{LibraryItemID: item}, "")
	c.must(err)
	_, err = b.AddFile(c.ctx, up, FileAddSpec{Name: "partial", SourceType: SourcePush})
	c.must(err)
	sf, err := b.OpenUpload(c.ctx, up, "partial", UploadOptions{})
	c.must(err)
	_, err = sf.WriteAt([]byte("half of it"), 0)
	c.must(err)
	down, err := b.CreateDownloadSession(c.ctx, DownloadSessionCreateSpec{LibraryItemID: item}, "")
	c.must(err)
	staging := stagingDir(c.storage, up)
	if _, err := os.Stat(staging); err != nil {
		t.Fatalf("b's staging: %v", err)
	}
	// a's own sessions are not b's: they must survive b's failure.
	mine, err := a.CreateDownloadSession(c.ctx, DownloadSessionCreateSpec{LibraryItemID: item}, "")
	c.must(err)

	c.must(a.NodeTick(c.ctx)) // a leads
	c.must(b.NodeTick(c.ctx))
	// b's goroutine would have heartbeat; it is dead: only a ticks.
	c.clock.Advance(testLease - time.Second)
	c.must(a.NodeTick(c.ctx))
	if st := nodeUpdateState(t, a, up); st != StateActive {
		t.Fatalf("b's update session %s before its lease lapsed, want ACTIVE", st)
	}
	c.clock.Advance(2 * time.Second)
	c.must(a.NodeTick(c.ctx))

	us, err := a.GetUpdateSession(c.ctx, up)
	c.must(err)
	if us.State != StateFailed || us.ErrorMessage == nil || !strings.Contains(us.ErrorMessage.DefaultMessage, "no heartbeat") {
		t.Fatalf("b's update session after its lease lapsed: %s %+v, want ERROR saying why", us.State, us.ErrorMessage)
	}
	ds, err := a.GetDownloadSession(c.ctx, down)
	c.must(err)
	if ds.State != StateFailed {
		t.Fatalf("b's download session after its lease lapsed: %s, want ERROR", ds.State)
	}
	if st, err := a.GetDownloadSession(c.ctx, mine); err != nil || st.State != StateActive {
		t.Fatalf("a's own download session: %v %v, want ACTIVE", st, err)
	}
	nodes, err := a.Nodes(c.ctx)
	c.must(err)
	if nb := nodeByID(t, nodes, b.nodeID); nb.State != "down" || nb.UpdateSessions != 0 {
		t.Fatalf("b after its lease lapsed: %+v, want down with no active session", nb)
	}
	if got := c.read(a, item, "committed"); got != "committed by b" {
		t.Fatalf("b's committed file reads %q on a", got)
	}
	if _, err := a.GetFile(c.ctx, item, "partial"); KindOf(err) != KindNotFound {
		t.Fatalf("b's uncommitted file: %v, want NotFound", err)
	}

	// b comes back (the process that died is gone: its handle goes
	// without a word) and cleans up after itself.
	sf.Close()
	c.must(b.Close())
	// What a's afterEnd removed, or a dead b left: put a leftover back.
	c.must(os.MkdirAll(staging, 0o755))
	c.must(os.WriteFile(filepath.Join(staging, "1"), []byte("left"), 0o644))
	b, _ = c.node(homeB)
	if _, err := os.Stat(staging); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("b's staging after its restart: %v, want it removed", err)
	}
	c.must(b.NodeTick(c.ctx))
	nodes, err = a.Nodes(c.ctx)
	c.must(err)
	if nb := nodeByID(t, nodes, b.nodeID); nb.State != "up" {
		t.Fatalf("b after its restart: %+v, want up", nb)
	}
	if rep, err := a.Fsck(c.ctx, nil); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("fsck after the lapse and restart: %+v %v", rep, err)
	}
}

// TestNodeStagingOfOthersIsKept: a node that restarts leaves the staging
// of another node's live session alone, though it shares the directory.
func TestNodeStagingOfOthersIsKept(t *testing.T) {
	c := newCluster(t)
	a, _ := c.node("")
	b, homeB := c.node("")
	item := c.item(a)
	up, err := a.CreateUpdateSession(c.ctx, UpdateSessionCreateSpec{LibraryItemID: item}, "")
	c.must(err)
	_, err = a.AddFile(c.ctx, up, FileAddSpec{Name: "f", SourceType: SourcePush})
	c.must(err)
	sf, err := a.OpenUpload(c.ctx, up, "f", UploadOptions{})
	c.must(err)
	_, err = sf.WriteAt([]byte("a's bytes"), 0)
	c.must(err)

	c.must(b.Close())
	b, _ = c.node(homeB)
	c.clock.Advance(testLease / 2)
	c.must(b.NodeTick(c.ctx))

	_, err = sf.Finish(c.ctx)
	c.must(err)
	c.must(sf.Close())
	c.must(a.CompleteUpdateSession(c.ctx, up))
	if got := c.read(b, item, "f"); got != "a's bytes" {
		t.Fatalf("a's file reads %q on b", got)
	}
}

// TestFreedContentGrace: a blob no file references any more stays for
// the grace period, so that a reader on another node keeps its version;
// only the leader deletes it, after the grace.
func TestFreedContentGrace(t *testing.T) {
	c := newCluster(t)
	a, _ := c.node("")
	b, _ := c.node("")
	c.must(a.NodeTick(c.ctx)) // a leads
	item := c.item(a)
	c.write(a, item, "f", "version 1")
	blob := c.blob("version 1")

	r, err := b.OpenFileReader(c.ctx, item, "f") // a reader on b
	c.must(err)
	c.write(a, item, "f", "version 2") // version 1 loses its last file
	c.clock.Advance(2 * testGrace)
	c.must(b.NodeTick(c.ctx))
	c.must(a.NodeTick(c.ctx)) // b's download session still pins it
	got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil || string(got) != "version 1" {
		t.Fatalf("b's reader of version 1 read %q, %v", got, err)
	}
	c.must(r.Close())
	b.endIdleReadSessions(0) // its last reference goes: the grace starts
	if _, err := os.Stat(blob); err != nil {
		t.Fatalf("freed blob deleted at once: %v", err)
	}
	c.clock.Advance(testGrace - time.Second)
	c.must(a.NodeTick(c.ctx))
	if _, err := os.Stat(blob); err != nil {
		t.Fatalf("freed blob deleted before the grace: %v", err)
	}
	c.clock.Advance(2 * time.Second)
	c.must(b.NodeTick(c.ctx)) // not the leader: deletes nothing
	if _, err := os.Stat(blob); err != nil {
		t.Fatalf("a node that does not lead deleted a freed blob: %v", err)
	}
	c.must(a.NodeTick(c.ctx))
	if _, err := os.Stat(blob); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("freed blob after the grace: %v, want it deleted by the leader", err)
	}
	if got := c.read(b, item, "f"); got != "version 2" {
		t.Fatalf("f reads %q on b, want version 2", got)
	}
}

// TestFreedContentRevived: content committed again within the grace is
// no longer freed, on whichever node the commit runs.
func TestFreedContentRevived(t *testing.T) {
	c := newCluster(t)
	a, _ := c.node("")
	b, _ := c.node("")
	c.must(a.NodeTick(c.ctx))
	item := c.item(a)
	c.write(a, item, "f", "same bytes")
	c.must(a.RemoveFile(c.ctx, item, "f"))
	c.write(b, item, "g", "same bytes") // within the grace, on b
	c.clock.Advance(2 * testGrace)
	c.must(a.NodeTick(c.ctx))
	if _, err := os.Stat(c.blob("same bytes")); err != nil {
		t.Fatalf("a blob committed again within the grace was deleted: %v", err)
	}
	if got := c.read(a, item, "g"); got != "same bytes" {
		t.Fatalf("g reads %q", got)
	}
	if rep, err := a.Fsck(c.ctx, nil); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("fsck: %+v %v", rep, err)
	}
}

// TestPeerMountWriteWaits: a change through node b's mount to an item
// node a's mount is writing waits for a's update session to end, up to
// PeerWriteWait, and then fails with ResourceBusy (EBUSY on the mount).
func TestPeerMountWriteWaits(t *testing.T) {
	c := newCluster(t)
	a, _ := c.node("")
	c.opts.PeerWriteWait = 300 * time.Millisecond
	b, _ := c.node("")
	item := c.item(a)

	da, err := a.CreateFile(c.ctx, item, "from-a", Posix{Mode: 0o644})
	c.must(err)
	_, err = da.WriteAt(c.ctx, []byte("a's "), 0) // a's session is ACTIVE now
	c.must(err)

	start := time.Now()
	db, err := b.CreateFile(c.ctx, item, "from-b", Posix{Mode: 0o644})
	if err == nil {
		_, err = db.WriteAt(c.ctx, []byte("b's"), 0)
	}
	if KindOf(err) != KindResourceBusy {
		t.Fatalf("b's write while a writes the item: %v, want ResourceBusy", err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("b's write failed after %v, want it to wait about PeerWriteWait (300ms)", waited)
	}
	if db != nil {
		db.Close(c.ctx)
	}

	// a ends its session while b waits: b goes on.
	done := make(chan error, 1)
	go func() {
		d, err := b.CreateFile(c.ctx, item, "from-b", Posix{Mode: 0o644})
		if err != nil {
			done <- err
			return
		}
		if _, err := d.WriteAt(c.ctx, []byte("b's file"), 0); err != nil {
			done <- err
			return
		}
		done <- errors.Join(d.Commit(c.ctx), d.Close(c.ctx))
	}()
	time.Sleep(50 * time.Millisecond)
	_, err = da.WriteAt(c.ctx, []byte("file"), 4)
	c.must(err)
	c.must(da.Commit(c.ctx))
	c.must(da.Close(c.ctx))
	c.must(<-done)
	if got := c.read(b, item, "from-a"); got != "a's file" {
		t.Fatalf("from-a reads %q", got)
	}
	if got := c.read(a, item, "from-b"); got != "b's file" {
		t.Fatalf("from-b reads %q", got)
	}

	// An API client's session on the item is not waited for.
	s, err := a.CreateUpdateSession(c.ctx, UpdateSessionCreateSpec{LibraryItemID: item}, "")
	c.must(err)
	start = time.Now()
	db, err = b.OpenDraft(c.ctx, item, "from-b")
	if err == nil {
		_, err = db.WriteAt(c.ctx, []byte("x"), 0)
		db.Close(c.ctx)
	}
	if KindOf(err) != KindResourceBusy || time.Since(start) > 200*time.Millisecond {
		t.Fatalf("b's write while an API client holds the item: %v after %v, want ResourceBusy at once", err, time.Since(start))
	}
	c.must(a.CancelUpdateSession(c.ctx, s))
}

func nodeUpdateState(t *testing.T, m *Manager, id string) State {
	t.Helper()
	s, err := m.GetUpdateSession(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s.State
}

// TestDownNodeIsForgotten: a node that went down and never came back is
// listed as down for a day, then its record goes.
func TestDownNodeIsForgotten(t *testing.T) {
	c := newCluster(t)
	a, _ := c.node("")
	b, _ := c.node("")
	item := c.item(a)
	_, err := b.CreateUpdateSession(c.ctx, UpdateSessionCreateSpec{LibraryItemID: item}, "")
	c.must(err)
	c.clock.Advance(testLease + time.Second)
	c.must(a.NodeTick(c.ctx))
	nodes, err := a.Nodes(c.ctx)
	c.must(err)
	if nb := nodeByID(t, nodes, b.nodeID); nb.State != "down" {
		t.Fatalf("b: %+v, want down", nb)
	}
	c.clock.Advance(nodeForget - time.Minute)
	c.must(a.NodeTick(c.ctx))
	nodes, err = a.Nodes(c.ctx)
	c.must(err)
	nodeByID(t, nodes, b.nodeID) // still listed
	c.clock.Advance(2 * time.Minute)
	c.must(a.NodeTick(c.ctx))
	nodes, err = a.Nodes(c.ctx)
	c.must(err)
	if len(nodes) != 1 || nodes[0].ID != a.nodeID {
		t.Fatalf("a day after b went down: %+v, want a only", nodes)
	}
}

// TestOtherNodesChangesAreTold: a subscriber on node b hears, by name, of
// what node a commits — names that appear, go, or change in place, files
// before their item — and not of b's own changes twice.
func TestOtherNodesChangesAreTold(t *testing.T) {
	c := newCluster(t)
	a, _ := c.node("")
	b, _ := c.node("")
	changes := make(chan Change, 100)
	b.Subscribe(func(ch Change) { changes <- ch })
	next := func(what string) Change {
		t.Helper()
		select {
		case ch := <-changes:
			return ch
		case <-time.After(10 * time.Second):
			t.Fatalf("b was not told of %s", what)
		}
		return Change{}
	}
	time.Sleep(200 * time.Millisecond) // the watch starts at the revision it reads first
	item := c.item(a)
	got := []Change{next("a library"), next("an item"), next("the library's change")}
	if got[0].Library != "lib" || got[0].Item != "" || !got[0].Appeared {
		t.Fatalf("first: %+v, want library lib appeared", got[0])
	}
	c.write(a, item, "f", "data")
	var file, itemChange *Change
	for range 2 {
		ch := next("a file committed")
		switch {
		case len(ch.Files) == 1 && ch.Files[0] == "f":
			file = &ch
			if itemChange != nil {
				t.Fatalf("the item was told before its file")
			}
		case ch.Item == "item" && len(ch.Files) == 0:
			itemChange = &ch
		default:
			t.Fatalf("unexpected change %+v", ch)
		}
	}
	if !file.Appeared || file.Library != "lib" || file.Item != "item" {
		t.Fatalf("the new file: %+v, want lib/item/f appeared", file)
	}
	c.must(a.RenameFile(c.ctx, item, "f", "g", false))
	gone, appeared := false, false
	for !gone || !appeared {
		ch := next("a rename")
		if len(ch.Files) == 1 {
			gone = gone || (ch.Files[0] == "f" && ch.Gone)
			appeared = appeared || (ch.Files[0] == "g" && ch.Appeared)
		}
	}
	// b's own change is told once, by b itself (notifyItem), not again
	// by the watch.
	for len(changes) > 0 {
		<-changes
	}
	own := 0
	c.must(b.RenameFile(c.ctx, item, "g", "h", false))
	deadline := time.After(time.Second)
	for done := false; !done; {
		select {
		case ch := <-changes:
			if len(ch.Files) > 0 && (ch.Gone || ch.Appeared) {
				t.Fatalf("b's own rename came back from the watch: %+v", ch)
			}
			own++
		case <-deadline:
			done = true
		}
	}
	if own != 1 {
		t.Fatalf("b's own rename was told %d times, want once", own)
	}
}

// TestManyBlobsFreedAtOnce: an rm -rf frees blobs by the hundred; on
// etcd they are recorded in transactions within its 128 keys, and a node
// holding hundreds of sessions still leaves cleanly.
func TestManyBlobsFreedAtOnce(t *testing.T) {
	c := newCluster(t)
	a, _ := c.node("")
	var keys []meta.ContentKey
	for i := range 300 {
		sum := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		keys = append(keys, meta.ContentKey{BackingID: 1, SHA256: sum[:]})
	}
	a.freeContent(c.ctx, keys)
	var freed []meta.FreedContentEntry
	c.must(a.store.View(c.ctx, func(tx *meta.Tx) (err error) { freed, err = tx.FreedContents(0); return err }))
	if len(freed) != len(keys) {
		t.Fatalf("%d of %d freed blobs recorded", len(freed), len(keys))
	}
	item := c.item(a)
	for range 200 {
		s, err := a.CreateDownloadSession(c.ctx, DownloadSessionCreateSpec{LibraryItemID: item}, "")
		c.must(err)
		c.must(a.CancelDownloadSession(c.ctx, s))
	}
	// Close reads all 200 (ended) sessions to see that the node holds
	// none, without a transaction too large for etcd, and so removes
	// its record.
	c.must(a.Close())
	st, err := meta.Open(c.ctx, meta.Options{URL: c.url})
	c.must(err)
	defer st.Close()
	c.must(st.View(c.ctx, func(tx *meta.Tx) error {
		nodes, err := tx.Nodes()
		if err == nil && len(nodes) != 0 {
			t.Errorf("nodes after a clean close: %+v, want none", nodes)
		}
		return err
	}))
}

// TestNodeStagingInTheMaking: on a shared storage directory a restarting
// node leaves a staging directory of no session it knows alone while it
// is young (another node's commit may be about to create its session),
// and removes it once older than the content grace.
func TestNodeStagingInTheMaking(t *testing.T) {
	c := newCluster(t)
	a, _ := c.node("")
	b, homeB := c.node("")
	c.item(a) // the library on the shared storage
	young := stagingDir(c.storage, newUUID())
	old := stagingDir(c.storage, newUUID())
	for _, d := range []string{young, old} {
		c.must(os.MkdirAll(d, 0o755))
		c.must(os.WriteFile(filepath.Join(d, "1"), []byte("bytes"), 0o644))
	}
	past := time.Now().Add(-2 * testGrace)
	c.must(os.Chtimes(old, past, past))
	c.must(b.Close())
	c.node(homeB)
	if _, err := os.Stat(filepath.Join(young, "1")); err != nil {
		t.Fatalf("a young staging directory of no known session after a restart: %v, want it kept", err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an old staging directory of no known session after a restart: %v, want it removed", err)
	}
}
