package meta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"
)

// The catalog sits on a small transactional key-value engine, as JuiceFS's
// metadata sits on its tkv layer: Store and Tx (store.go) build records,
// indexes and counters out of these few operations, and nothing above
// this file's interfaces knows which engine runs. One file per engine
// implements them (kv_badger.go, kv_etcd.go); kv_test.go is the suite
// every engine passes.
//
// An engine runs one attempt of a transaction; the retry loop (runTxn) is
// shared: a commit the engine reports as a conflict is run again from
// scratch after a jittered backoff, until it commits, fails otherwise, or
// its context ends.

// kvEngine is one transactional key-value store.
type kvEngine interface {
	// txn runs fn once in a transaction of that mode, and commits it
	// if fn returns nil. A commit that lost to a concurrent transaction
	// returns an error for which conflict reports true; nothing of it is
	// then applied.
	txn(ctx context.Context, mode txnMode, fn func(kvTxn) error) error
	// conflict reports whether err is a lost commit, worth a retry.
	conflict(err error) bool
	// sync makes every transaction committed so far durable (a no-op on
	// engines where every commit is).
	sync() error
	// idBatch is how many IDs one allocation takes from the counter.
	idBatch() uint64
	// shared reports whether other processes may commit to the same
	// catalog meanwhile (see Store.Shared).
	shared() bool
	// dropAll deletes every key of the catalog.
	dropAll(ctx context.Context) error
	close() error
	String() string
}

// kvTxn is what a transaction body may do. Keys and values handed out
// are the caller's; keys and values handed in must not change until the
// transaction ends. A transaction reads its own writes.
type kvTxn interface {
	// get returns the value under key and its version, or ErrNotFound.
	// Versions are the engine's (Badger's commit timestamp, etcd's
	// ModRevision): a key's version changes whenever its value may
	// have; a key this transaction wrote has version 0.
	get(key []byte) (val []byte, version uint64, err error)
	// scan calls fn for every key in [begin, end), in key order, with
	// its version and a function that returns a copy of its value
	// (called only if needed: a record found in the cache is not copied
	// out of Badger; nil values if keysOnly). fn must not keep key past
	// its return. Engines read large ranges in pages. An error from fn
	// ends the scan and is returned.
	scan(begin, end []byte, keysOnly bool, fn func(key []byte, version uint64, value func() ([]byte, error)) error) error
	// count returns how many keys [begin, end) holds, not counting
	// this transaction's own writes (callers count in transactions
	// that wrote nothing there). A commit checks no key of the range
	// was added or changed since, not that none was deleted: a count
	// is for reports (statfs), not for decisions.
	count(begin, end []byte) (int64, error)
	set(key, val []byte) error
	del(key []byte) error
	// delRange deletes every key in [begin, end), blind: the range is
	// not read, and the commit does not check it. It is for ranges only
	// their owner writes (a session's records, deleted with it), of any
	// size: on etcd it is one operation of the transaction, not one per
	// key. Reads of the range in the same transaction see it empty; a
	// write into it afterwards is refused.
	delRange(begin, end []byte) error
	// absent tells the transaction that key does not exist (it is
	// under an ID just allocated), so a get of it needs no read; the
	// commit still checks it.
	absent(key []byte)
}

// txnMode is what a transaction may do and how recent its reads must be.
type txnMode int

const (
	// readOnly sees one consistent state of the catalog, no older
	// than when the transaction began.
	readOnly txnMode = iota
	// readRecent may answer from the node's own copy of keys it read
	// before (etcd: kv_etcd_cache.go), unchecked: as recent as the
	// watch that keeps the copy current, a few milliseconds behind the
	// cluster. For attributes that the kernel caches anyway.
	readRecent
	readWrite
)

// incrBy adds delta to the counter under key and returns its new value.
// It is a read and a write like any other, so the engine's conflict
// check makes it atomic; no engine needs a counter primitive of its own.
func incrBy(t kvTxn, key []byte, delta int64) (int64, error) {
	v, _, err := t.get(key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	n, err := counterValue(key, v)
	if err != nil {
		return 0, err
	}
	n += delta
	return n, t.set(key, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// counterValue decodes a counter (8 bytes big-endian, as Badger's
// sequences store theirs; absent is 0).
func counterValue(key, v []byte) (int64, error) {
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return int64(binary.BigEndian.Uint64(v)), nil
	}
	return 0, fmt.Errorf("%w: key %q: counter of %d bytes", ErrCorrupt, key, len(v))
}

// ErrTooLarge: a transaction exceeds what the engine accepts in one
// atomic commit (etcd: 128 operations or compared keys, 1.5 MiB per
// request, by default). Nothing of it was committed; it is never split.
var ErrTooLarge = errors.New("meta: transaction too large for the catalog engine")

// maxTxnAttempts bounds the retries of a conflicting transaction. Every
// commit is an fsync on Badger, so while a key is hot (a popular blob's
// reference count, pinned by many download sessions at once) one
// transaction can lose a dozen rounds in a row: eight writers on one key
// need up to 16 attempts. The bound is for livelock, not for load; with
// the backoff capped at 12.8 ms it is reached after about 0.7 s.
const maxTxnAttempts = 64

// runTxn runs fn through e until it commits, fails with anything but a
// conflict, runs out of attempts (ErrConflict) or ctx ends (ctx.Err()).
// Read-write transactions of one process take turns through t (nil: no
// turns; see turns).
func runTxn(ctx context.Context, e kvEngine, mode txnMode, t *turns, fn func(kvTxn) error) error {
	update := mode == readWrite
	holding := false
	defer func() {
		if holding {
			t.release()
		}
	}()
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if update && t != nil && !holding {
			if attempt >= fairAfter {
				holding = t.take()
			}
			if !holding {
				t.wait(ctx)
			}
		}
		err := e.txn(ctx, mode, fn)
		if err == nil || !e.conflict(err) {
			return err
		}
		if attempt+1 >= maxTxnAttempts {
			return ErrConflict
		}
		backoff := time.Duration(50<<min(attempt, 8)) * time.Microsecond
		if err := sleepCtx(ctx, backoff/2+rand.N(backoff)); err != nil {
			return err
		}
	}
}

// turns keeps a transaction that keeps losing from starving. Optimistic
// transactions favour short ones: on etcd a commit of content (a dozen
// keys read over a few round trips) lost all of its 64 attempts to three
// readers pinning and unpinning the same blob in a loop. So a
// transaction that lost fairAfter times in a row takes the turn: until
// it ends, the other read-write transactions of this process wait, up to
// fairWait, before each attempt, which leaves it a quiet window; only
// other nodes can still beat it. The waits are bounded, and nothing is
// held across a transaction: one run inside another's body (tests do
// that) is delayed, never deadlocked.
type turns struct {
	mu    sync.Mutex
	held  bool          // GUARDED_BY(mu)
	freed chan struct{} // GUARDED_BY(mu); closed when the holder ends
}

const (
	fairAfter = 6
	fairWait  = 50 * time.Millisecond
)

// take gives the caller the turn unless another transaction holds it.
func (t *turns) take() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.held {
		return false
	}
	t.held, t.freed = true, make(chan struct{})
	return true
}

func (t *turns) release() {
	t.mu.Lock()
	t.held = false
	close(t.freed)
	t.mu.Unlock()
}

// wait waits, at most fairWait, for a turn another transaction holds.
func (t *turns) wait(ctx context.Context) {
	t.mu.Lock()
	held, freed := t.held, t.freed
	t.mu.Unlock()
	if !held {
		return
	}
	timer := time.NewTimer(fairWait)
	defer timer.Stop()
	select {
	case <-freed:
	case <-timer.C:
	case <-ctx.Done():
	}
}

// prefixEnd is the first key after every key that starts with prefix.
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // all 0xff: no end; engines read to the last key
}

// openEngine opens the engine a catalog URL names:
//
//	badger:///abs/dir, badger://rel/dir or a plain path   Badger in that directory
//	etcd://host:port[,host:port...]/prefix[?params]        etcd (see openEtcd)
func openEngine(ctx context.Context, rawURL string, opts Options) (kvEngine, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return openBadger(rawURL, opts)
	}
	switch u.Scheme {
	case "badger":
		dir := u.Host + u.Path
		if u.Opaque != "" {
			dir = u.Opaque
		}
		if dir == "" {
			return nil, fmt.Errorf("catalog URL %q: no directory", rawURL)
		}
		return openBadger(dir, opts)
	case "etcd":
		return openEtcd(ctx, u)
	}
	return nil, fmt.Errorf("catalog URL %q: unknown engine %q (want badger:// or etcd://)", Redact(rawURL), u.Scheme)
}

// Redact returns a catalog URL fit for logs and errors: any password is
// replaced by "xxxxx".
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// sleepCtx waits d, or less if ctx ends first (then its error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
