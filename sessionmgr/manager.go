package sessionmgr

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"clfs/meta"
)

// DefaultSessionTimeout is how long an idle session lives (spec §6.1).
const DefaultSessionTimeout = 5 * time.Minute

// Options configures a Manager. Time and directories are injected so tests
// can expire sessions with a fake clock and keep everything in a temp dir.
type Options struct {
	// Home holds meta/ (the catalog) and storage/ (the default backing).
	Home string
	// Meta is the catalog's URL (meta.Open: badger://DIR, etcd://...);
	// empty means the one the home remembers, else badger://HOME/meta.
	// One given is remembered in the home (catalogURL).
	Meta string
	// SessionTimeout is the idle lifetime of sessions; zero means
	// DefaultSessionTimeout. Terminal sessions linger as long again.
	SessionTimeout time.Duration
	Clock          Clock
	Logger         *slog.Logger
	// ReapInterval is how often the background reaper runs; zero picks
	// one from the timeout, negative disables it (tests call ExpireDue).
	ReapInterval time.Duration
	// Endpoints mints upload and download URIs; nil leaves PUSH files
	// without an upload_endpoint and serves downloads as file:// URIs.
	Endpoints Endpoints
	// InlineLimit is the size up to which files are staged in memory and
	// stored in the catalog; zero means DefaultInlineLimit, negative
	// stores every file as a blob file.
	InlineLimit int64
	// ReadOnly serves the home without changing it: every call that
	// would change a library, an item, its files or an update session
	// fails with KindUnauthorized and cause ErrReadOnly. Reads, fsck and
	// download sessions work as usual: a download session's record, pins
	// and expiry are the bookkeeping of a reader, which reading needs.
	// Open then recovers only download sessions, and the reaper expires
	// only them (see recover).
	ReadOnly bool
	// NamespaceSync syncs every namespace change (rename, unlink, mkdir,
	// rmdir, chmod, chown, utimens) before it returns. By default they
	// are ordered, not each synced: durable with the next sync, within a
	// second (durability.go).
	NamespaceSync bool
	// VerifyReads checks stored content against its SHA-256 as it is
	// read to the end (ErrContentCorrupt for the last bytes of a damaged
	// blob), and keeps blobs from being handed to the kernel
	// (DownloadReader.Passthrough). Without it, blobs are trusted once
	// hashed at commit, and fsck is where they are checked again; the
	// size of a blob is checked at every open either way.
	VerifyReads bool
	// NodeLease is how long this node may go without a heartbeat before
	// the leader fails its sessions (node.go); zero means
	// DefaultNodeLease. It heartbeats every lease/3.
	NodeLease time.Duration
	// ContentGrace is how long a freed blob file stays on a shared
	// catalog before the leader deletes it; zero means
	// DefaultContentGrace.
	ContentGrace time.Duration
	// NodeAddr is what `clfs status` shows as this node's address: its
	// mountpoint or listen address.
	NodeAddr string
	// PeerWriteWait is how long a change through the mount waits for
	// another node's mount to end its update session on the same item
	// before it fails with ResourceBusy (EBUSY); zero means
	// DefaultPeerWriteWait, negative fails at once.
	PeerWriteWait time.Duration
}

// DefaultPeerWriteWait covers a peer's copy of a few files into the item:
// its mount's session ends when its last file there is closed.
const DefaultPeerWriteWait = 10 * time.Second

// DefaultInlineLimit: a tar of small files commits each with one catalog
// fsync; from this size on a blob file's fsyncs are amortised.
const DefaultInlineLimit = 64 << 10

// inlineCommitBudget bounds the inline bytes one commit writes into the
// catalog: a commit is one transaction, and the engines take only so
// much in one (etcd 1.5 MiB per request; Badger about 1.2 MiB of what it
// keeps in its tree, inline values from 1 KiB counting as pointers into
// its value log; more is meta.ErrTooLarge). A session's small files are staged
// in the catalog up to it; past it they go to staging files and are
// committed as blob files (Finish, commit). The budget is soft for
// uploads finishing at the same instant; the engines' bounds leave room.
const inlineCommitBudget = 512 << 10

// Endpoints mints the transfer URIs of a front end that serves the data
// plane over the network (the REST server).
type Endpoints interface {
	UploadURI(sessionID, fileName string) string
	DownloadURI(sessionID, fileName string) string
}

// Manager is the content library item API over one home directory. It is
// safe for concurrent use; its locks, their order and why some are held
// across a commit are in the package doc (Locking).
type Manager struct {
	// dependencies
	store     catalog
	durable   *durability
	clock     Clock
	log       *slog.Logger
	endpoints Endpoints

	// constant after Open
	home           string
	defaultStorage string
	timeout        time.Duration
	readOnly       bool
	namespaceSync  bool
	verifyReads    bool

	contentLocks [64]sync.Mutex // by blob stripe (lockContent)
	inlineLimit  int64
	stagedMem    atomic.Int64 // bytes staged in memory by all uploads

	// owner tags the update sessions this process opens for the mount;
	// a new tag per Open, so sessions of a process that died are known.
	owner string
	// The node this Manager is in its catalog (node.go).
	nodeID   uint64
	node     meta.Node // as registered
	shared   bool      // other nodes may share the catalog
	lease    time.Duration
	grace    time.Duration
	peerWait time.Duration // Options.PeerWriteWait; 0: fail at once
	homeLock *os.File

	mu    sync.Mutex
	live  map[uint64]*liveSession // GUARDED_BY(mu); keyed by session ID
	items map[string]*mountItem   // GUARDED_BY(mu); the mount's drafts, by item id
	roots []string                // GUARDED_BY(mu); backing roots, once read (see backingRoots)
	// readers holds the mount's shared read session of each item.
	readers map[string]*readSession // GUARDED_BY(mu)
	// readIdle wakes the sweeper of read sessions nobody reads through.
	readIdle chan struct{}
	// subscribers are told of changes (see Subscribe).
	subscribers []func(Change) // GUARDED_BY(mu)
	// watchStop ends the watch of other nodes' changes (watch.go), if
	// Subscribe started one; watchDone closes when it has.
	watchStop func()        // GUARDED_BY(mu)
	watchDone chan struct{} // GUARDED_BY(mu)

	stop   chan struct{}
	reaper sync.WaitGroup

	// Pulls (pull.go) run on goroutines derived from pullCtx; Close
	// cancels it and waits for pullsWG.
	pullCtx      context.Context
	pullStop     context.CancelFunc
	pullsWG      sync.WaitGroup
	pullsRunning atomic.Int32 // for tests: goroutines in runPull
	closing      bool         // GUARDED_BY(mu); no new pulls, and Close ran
	// pendingMu serializes finishing pending completes (see
	// finishPendingComplete).
	pendingMu sync.Mutex
	// rootCAs validates https sources without a thumbprint or
	// certificate; nil means the system roots. Tests set it.
	rootCAs *x509.CertPool
	// afterPullAbort, if set, runs when an aborted pull has cleaned up
	// (tests make it slow, to show that Close waits).
	afterPullAbort func()
	// afterLastClose, if set, runs when a draft's last handle closes,
	// before its commit (tests open the next handle there).
	afterLastClose func()
	// commitTxHook, if set, runs just before a commit's transaction
	// (committed false) and just after it committed (true); tests end
	// the caller's context there.
	commitTxHook func(committed bool)
	// afterSweepBatch, if set, runs after each transaction of a sweep
	// (sweep.go), for tests that cut one short.
	afterSweepBatch func()
	// afterBuildBatch, if set, runs after each transaction that builds
	// a large commit's file table (bigcommit.go).
	afterBuildBatch func()
	// sweeping is held by the node's one sweep at a time (sweep.go).
	sweeping sync.Mutex
}

// catalog is the meta.Store as the manager sees it: the error of every
// transaction comes out in the API's terms (fromMeta), so no meta sentinel
// reaches a caller as a bare server error.
// Every sync goes through durability, which so knows what is durable.
type catalog struct {
	*meta.Store
	durable *durability
}

// Every transaction takes its caller's context: a FUSE interrupt or a
// client that hangs up stops a transaction that keeps conflicting before
// it commits (meta.Store.Update), never after; the caller then gets an
// error wrapping ctx.Err() and nothing changed. Work that must finish once
// a transaction committed (freeing blobs, ending sessions, notifying), and
// a commit at close(2), run under context.WithoutCancel. Only what has no
// caller uses context.Background: Open's recovery, the reaper, the
// syncer, the pulls' goroutines, and io.Closer's Close of readers.

// Update commits fn and syncs: it and everything committed before it are
// durable when it returns.
func (c catalog) Update(ctx context.Context, fn func(tx *meta.Tx) error) error {
	if err := fromMeta(c.Store.UpdateBuffered(ctx, fn)); err != nil {
		return err
	}
	return fromMeta(c.durable.sync())
}

// UpdateBuffered commits fn without a sync; the syncer makes it durable
// within syncDelay.
func (c catalog) UpdateBuffered(ctx context.Context, fn func(tx *meta.Tx) error) error {
	if err := fromMeta(c.Store.UpdateBuffered(ctx, fn)); err != nil {
		return err
	}
	c.durable.changed()
	return nil
}

// Sync makes everything committed so far durable.
func (c catalog) Sync() error { return fromMeta(c.durable.sync()) }

func (c catalog) View(ctx context.Context, fn func(tx *meta.Tx) error) error {
	return fromMeta(c.Store.View(ctx, fn))
}

func (c catalog) ViewRecent(ctx context.Context, fn func(tx *meta.Tx) error) error {
	return fromMeta(c.Store.ViewRecent(ctx, fn))
}

// NextID is a fresh catalog ID (meta.Store.NextID).
func (c catalog) NextID(ctx context.Context) (uint64, error) {
	id, err := c.Store.NextID(ctx)
	return id, fromMeta(err)
}

// liveSession is the in-memory part of a session: activity that is not
// worth a catalog write per byte, and the open data-plane objects.
type liveSession struct {
	lastActivity atomic.Int64 // unix ns
	handles      atomic.Int32 // open StagedFiles and DownloadReaders
	ended        atomic.Bool  // readers of a session that left ACTIVE get errors

	uploads     map[string]*StagedFile // GUARDED_BY(Manager.mu); PUSH uploads and running pulls
	pulls       map[*pull]struct{}     // GUARDED_BY(Manager.mu); running pulls
	downloading map[string]int64       // GUARDED_BY(Manager.mu); bytes served by open readers
}

// Open opens (creating if needed) the home directory and recovers from an
// earlier process that died: orphaned staging and unreferenced content are
// removed, interrupted transfers are marked ERROR; ACTIVE sessions expire
// normally.
func Open(opts Options) (*Manager, error) {
	if opts.Home == "" {
		return nil, errors.New("sessionmgr: no home directory")
	}
	home, err := filepath.Abs(opts.Home)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(home, "storage"), 0o700); err != nil {
		return nil, fmt.Errorf("create home %s: %w", home, err)
	}
	metaURL, err := catalogURL(home, opts.Meta)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		clock:          opts.Clock,
		log:            opts.Logger,
		endpoints:      opts.Endpoints,
		home:           home,
		defaultStorage: filepath.Join(home, "storage"),
		timeout:        opts.SessionTimeout,
		inlineLimit:    opts.InlineLimit,
		readOnly:       opts.ReadOnly,
		namespaceSync:  opts.NamespaceSync,
		verifyReads:    opts.VerifyReads,
		live:           map[uint64]*liveSession{},
		items:          map[string]*mountItem{},
		readers:        map[string]*readSession{},
		readIdle:       make(chan struct{}, 1),
		owner:          ownerMountPrefix + newUUID(),
		stop:           make(chan struct{}),
	}
	m.pullCtx, m.pullStop = context.WithCancel(context.Background()) // the pulls' own, ended by Close
	if m.clock == nil {
		m.clock = systemClock{}
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	switch {
	case m.inlineLimit == 0:
		m.inlineLimit = DefaultInlineLimit
	case m.inlineLimit < 0:
		m.inlineLimit = 0
	}
	if m.timeout <= 0 {
		m.timeout = DefaultSessionTimeout
	}
	m.lease, m.grace = cmp.Or(opts.NodeLease, DefaultNodeLease), cmp.Or(opts.ContentGrace, DefaultContentGrace)
	m.peerWait = max(cmp.Or(opts.PeerWriteWait, DefaultPeerWriteWait), 0)
	if m.lease < MinNodeLease {
		return nil, fmt.Errorf("node lease %s: must be at least %s (the node heartbeats every third of it)", m.lease, MinNodeLease)
	}
	if m.grace < 0 {
		return nil, fmt.Errorf("content grace %s: must not be negative", m.grace)
	}
	if m.homeLock, err = lockHome(home); err != nil {
		return nil, err
	}
	// Open takes no context: opening and recovery (below) have no caller
	// to stop them.
	st, err := meta.Open(context.Background(), meta.Options{URL: metaURL, Logger: m.log})
	if err != nil {
		m.homeLock.Close()
		return nil, err
	}
	m.shared = st.Shared()
	if m.nodeID, err = nodeID(context.Background(), home, st); err != nil {
		st.Close()
		m.homeLock.Close()
		return nil, err
	}
	if opts.Meta != "" && !opts.ReadOnly {
		if err := rememberCatalogURL(home, metaURL); err != nil {
			st.Close()
			m.homeLock.Close()
			return nil, err
		}
	}
	m.durable = newDurability(st)
	m.store = catalog{st, m.durable}
	if err := m.register(context.Background(), opts.NodeAddr); err != nil {
		m.pullStop()
		m.store.Close()
		m.homeLock.Close()
		return nil, fmt.Errorf("register node %d of %s: %w", m.nodeID, home, err)
	}
	if err := m.recover(context.Background()); err != nil {
		m.pullStop()
		m.store.Close()
		m.homeLock.Close()
		return nil, fmt.Errorf("recover %s: %w", home, err)
	}
	go m.runSyncer()
	interval := opts.ReapInterval
	if interval == 0 {
		interval = min(max(m.timeout/10, time.Second), 30*time.Second)
	}
	if interval > 0 {
		m.reaper.Add(2)
		go m.runReaper(interval)
		go m.every(m.lease/3, "node heartbeat", m.NodeTick)
	}
	m.reaper.Add(1)
	go m.runReadSessionSweeper()
	return m, nil
}

// Close stops the reaper and the running pulls and closes the catalog.
// Open staged files are closed; their sessions stay ACTIVE and expire
// after a restart (interrupted pulls are then ERROR).
// A second Close does nothing and returns nil.
func (m *Manager) Close() error {
	m.mu.Lock()
	again := m.closing
	m.closing = true
	m.mu.Unlock()
	if again {
		return nil
	}
	m.pullStop()
	m.pullsWG.Wait()
	m.mu.Lock()
	stopWatch := m.watchStop
	m.mu.Unlock()
	if stopWatch != nil {
		m.stopWatch()
	}
	close(m.stop)
	m.reaper.Wait()
	m.endIdleReadSessions(0)
	m.mu.Lock()
	for _, ls := range m.live {
		for _, sf := range ls.uploads {
			sf.closeFile()
		}
		ls.ended.Store(true)
	}
	m.live = map[uint64]*liveSession{}
	m.mu.Unlock()
	m.unregister(context.Background())
	// Last: what the steps above changed is synced with the rest.
	close(m.durable.stop)
	<-m.durable.done
	err := m.store.Close()
	m.homeLock.Close()
	return err
}

// Home returns the absolute home directory.
func (m *Manager) Home() string { return m.home }

// SessionTimeout returns the idle lifetime of sessions.
func (m *Manager) SessionTimeout() time.Duration { return m.timeout }

// ReadOnly reports whether the home is served read-only (Options.ReadOnly).
func (m *Manager) ReadOnly() bool { return m.readOnly }

// refuseIfReadOnly is the first step of every call that changes the
// catalog or stored content; op names the call in the error.
func (m *Manager) refuseIfReadOnly(op string) error {
	if !m.readOnly {
		return nil
	}
	return wrapf(KindUnauthorized, ErrReadOnly, "cannot %s: %v", op, ErrReadOnly)
}

func (m *Manager) now() int64 { return m.clock.Now().UnixNano() }

// liveFor returns the in-memory state of a session, creating it.
func (m *Manager) liveFor(id uint64) *liveSession {
	m.mu.Lock()
	defer m.mu.Unlock()
	ls := m.live[id]
	if ls == nil {
		ls = &liveSession{uploads: map[string]*StagedFile{}, pulls: map[*pull]struct{}{}}
		m.live[id] = ls
	}
	return ls
}

func (m *Manager) liveIfAny(id uint64) *liveSession {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live[id]
}

// touch records activity on a session: it will not expire before
// now + timeout. Cheap enough for every read and write.
func (m *Manager) touch(ls *liveSession) { ls.lastActivity.Store(m.now()) }

// expiresAt is the session's expiration time: the stored one, moved
// forward by activity seen since it was stored.
func (m *Manager) expiresAt(id uint64, stored int64) int64 {
	if ls := m.liveIfAny(id); ls != nil {
		if ls.handles.Load() > 0 {
			return max(stored, m.now()+int64(m.timeout))
		}
		if a := ls.lastActivity.Load(); a != 0 {
			return max(stored, a+int64(m.timeout))
		}
	}
	return stored
}

// ---- ids, tokens and labels

func newUUID() string { return uuid.NewString() }

// ownerMountPrefix starts the owner tag of sessions the mount opened.
const ownerMountPrefix = "mount:"

// Client-token operation codes (the scope of a token).
const (
	tokenLibrary  = 'L'
	tokenItem     = 'I'
	tokenUpdate   = 'U'
	tokenDownload = 'D'
)

// replayToken implements client_token idempotency (spec §0.4, §12 #1): a
// token must be a UUID; a replay with the same spec returns the object the
// first call created, with another spec it is an InvalidArgument.
func replayToken(tx *meta.Tx, op byte, token string, spec any) (existing, specHash string, err error) {
	if token == "" {
		return "", "", nil
	}
	if _, err := uuid.Parse(token); err != nil {
		return "", "", errorf(KindInvalidArgument, "client token %q is not a UUID", token)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return "", "", err
	}
	sum := sha256.Sum256(b)
	specHash = hex.EncodeToString(sum[:])
	ct, err := tx.ClientToken(op, token)
	switch {
	case errors.Is(err, meta.ErrNotFound):
		return "", specHash, nil
	case err != nil:
		return "", "", err
	case ct.SpecHash != specHash:
		return "", "", errorf(KindInvalidArgument, "client token %s was already used with a different spec", token)
	}
	return ct.UUID, specHash, nil
}

func rememberToken(tx *meta.Tx, op byte, token, specHash, id string) error {
	if token == "" {
		return nil
	}
	return tx.PutClientToken(op, token, &meta.ClientToken{UUID: id, SpecHash: specHash})
}

func resolve(tx *meta.Tx, kind meta.ObjectKind, what, id string) (uint64, error) {
	n, err := tx.ResolveUUID(id, kind)
	if err != nil {
		return 0, notFoundAs(err, KindNotFound, "%s %s not found", what, id)
	}
	return n, nil
}

func (m *Manager) libraryRec(tx *meta.Tx, id string) (*meta.Library, error) {
	n, err := resolve(tx, meta.LibraryObject, "library", id)
	if err != nil {
		return nil, err
	}
	return tx.Library(n)
}

func (m *Manager) itemRec(tx *meta.Tx, id string) (*meta.Item, error) {
	n, err := resolve(tx, meta.ItemObject, "library item", id)
	if err != nil {
		return nil, err
	}
	it, err := tx.Item(n)
	if err == nil && deleting(tx, it) {
		return nil, errorf(KindNotFound, "library item %s not found", id)
	}
	return it, err
}

// deleting reports an item that is hidden for deletion, or whose library
// is (sweep.go): gone for every client, though its record is still there.
func deleting(tx *meta.Tx, it *meta.Item) bool {
	if it.Deleting {
		return true
	}
	lib, err := tx.Library(it.LibraryID)
	return err == nil && lib.Deleting
}

// itemLabel is how messages name an item: LIBRARY/ITEM.
func itemLabel(tx *meta.Tx, it *meta.Item) string {
	lib, err := tx.Library(it.LibraryID)
	if err != nil {
		return it.Name
	}
	return lib.Name + "/" + it.Name
}

func fmtCounter(n uint64) string { return strconv.FormatUint(n, 10) }

func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func posixOf(ino uint64, a meta.Attr) Posix {
	p := Posix{Ino: ino, Mode: a.Mode, UID: a.UID, GID: a.GID, Mtime: nsTime(a.Mtime), Ctime: nsTime(a.Ctime)}
	p.Atime = p.Mtime
	if a.Atime != nil {
		p.Atime = nsTime(*a.Atime)
	}
	return p
}

// nextIDs returns n fresh IDs.
func (m *Manager) nextIDs(ctx context.Context, n int) ([]uint64, error) {
	ids := make([]uint64, n)
	for i := range ids {
		var err error
		if ids[i], err = m.store.NextID(ctx); err != nil {
			return nil, err
		}
	}
	return ids, nil
}
