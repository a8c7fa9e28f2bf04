package meta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// badgerEngine is the embedded engine, one process per directory (Badger
// locks it). Commits are written to the log without an fsync; sync makes
// them durable, which is how Store offers Update and UpdateBuffered.
type badgerEngine struct {
	db  *badger.DB
	dir string

	logsMu     sync.Mutex
	syncedLogs map[string]bool // GUARDED_BY(logsMu); logs no longer current, synced (see sync)

	stopGC chan struct{}
	gcDone sync.WaitGroup
}

func openBadger(dir string, opts Options) (*badgerEngine, error) {
	bo := badger.DefaultOptions(dir).
		// Writes are synced where it matters (Store.Update), not for
		// every bookkeeping transaction (Store.UpdateBuffered).
		WithSyncWrites(false).
		WithLogger(nil).
		WithNumVersionsToKeep(1).
		// The catalog is small; Badger's defaults size memtables and
		// caches for much larger data sets.
		WithMemTableSize(8 << 20).
		WithBlockCacheSize(4 << 20).
		WithIndexCacheSize(2 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		// Content is most of the catalog's bytes (small files are
		// inline) and rarely compresses; Snappy on every flushed block
		// cost more than it saved: with it, rsync of 1,000 files of
		// 20 KiB into one item took 8.9 s (the table builder's buffers
		// kept the heap at the Go memory limit, and the collector ran
		// 2,400 times), without it 3.8 s; rm -rf of 5,000 files went
		// from 1,230 to 2,900 files/s. Tables written before stay
		// readable: each says how it is compressed.
		WithCompression(options.None).
		// Inline content goes to the value log, written once, instead
		// of being copied through every flush and compaction of the
		// tree: records stay in the LSM tree, which then stays small
		// enough to keep the heap under the limit while it compacts.
		// Records and small names stay below the threshold. Value logs
		// are synced with the memtable logs (sync).
		WithValueThreshold(1 << 10)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", dir, err)
	}
	e := &badgerEngine{db: db, dir: dir, syncedLogs: map[string]bool{}, stopGC: make(chan struct{})}
	interval := opts.GCInterval
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	e.gcDone.Add(1)
	go e.runValueLogGC(interval, logger)
	return e, nil
}

func (e *badgerEngine) String() string  { return "badger://" + e.dir }
func (e *badgerEngine) idBatch() uint64 { return 64 }

func (e *badgerEngine) shared() bool { return false }

func (e *badgerEngine) runValueLogGC(interval time.Duration, logger *slog.Logger) {
	defer e.gcDone.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-e.stopGC:
			return
		case <-t.C:
			for {
				err := e.db.RunValueLogGC(0.5)
				if err != nil {
					if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
						logger.Warn("catalog value-log GC", "err", err)
					}
					break
				}
			}
		}
	}
}

func (e *badgerEngine) close() error {
	close(e.stopGC)
	e.gcDone.Wait()
	return e.db.Close()
}

func (e *badgerEngine) dropAll(context.Context) error { return e.db.DropAll() }

func (e *badgerEngine) conflict(err error) bool { return errors.Is(err, badger.ErrConflict) }

func (e *badgerEngine) txn(ctx context.Context, mode txnMode, fn func(kvTxn) error) error {
	if mode != readWrite { // every Badger read is as recent as can be
		return e.db.View(func(txn *badger.Txn) error { return fn(badgerTxn{txn}) })
	}
	err := e.db.Update(func(txn *badger.Txn) error {
		if err := fn(badgerTxn{txn}); err != nil {
			return err
		}
		// As on etcd: a ctx that ended stops the transaction before
		// it commits (an error discards it), never after.
		return ctx.Err()
	})
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	return err
}

type badgerTxn struct{ txn *badger.Txn }

func (badgerTxn) absent([]byte) {} // reads are local: nothing to save

func (t badgerTxn) count(begin, end []byte) (int64, error) {
	var n int64
	err := t.scan(begin, end, true, func([]byte, uint64, func() ([]byte, error)) error {
		n++
		return nil
	})
	return n, err
}

func (t badgerTxn) get(key []byte) ([]byte, uint64, error) {
	item, err := t.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	v, err := item.ValueCopy(nil)
	return v, item.Version(), err
}

func (t badgerTxn) scan(begin, end []byte, keysOnly bool, fn func(key []byte, version uint64, value func() ([]byte, error)) error) error {
	o := badger.DefaultIteratorOptions
	o.Prefix = commonPrefix(begin, end)
	// Values are read when asked for: the catalog's are small, in the
	// LSM tree, and a listing mostly finds its records in the cache.
	o.PrefetchValues = false
	it := t.txn.NewIterator(o)
	defer it.Close()
	var item *badger.Item
	value := func() ([]byte, error) {
		if keysOnly {
			return nil, nil
		}
		return item.ValueCopy(nil)
	}
	for it.Seek(begin); it.Valid(); it.Next() {
		item = it.Item()
		if end != nil && bytes.Compare(item.Key(), end) >= 0 {
			break
		}
		if err := fn(item.Key(), item.Version(), value); err != nil {
			return err
		}
	}
	return nil
}

// commonPrefix is what every key in [begin, end) starts with, so the
// iterator skips tables that cannot hold any.
func commonPrefix(begin, end []byte) []byte {
	n := 0
	for n < len(begin) && n < len(end) && begin[n] == end[n] {
		n++
	}
	return begin[:n]
}

func (t badgerTxn) set(key, val []byte) error { return t.txn.Set(key, val) }
func (t badgerTxn) del(key []byte) error      { return t.txn.Delete(key) }

// delRange deletes key by key: Badger bounds a transaction by bytes,
// which a session's records keep well within.
func (t badgerTxn) delRange(begin, end []byte) error {
	var keys [][]byte
	if err := t.scan(begin, end, true, func(k []byte, _ uint64, _ func() ([]byte, error)) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := t.txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// sync makes every transaction committed so far durable: one that
// returned before sync was called is on disk when sync returns.
//
// Badger's own Sync covers the current memtable's log and the current
// value log only. A transaction can sit in an older log: when a memtable
// fills up, the next write moves it to the immutable list and starts a
// new log, and the old one is not synced until a flush has turned it into
// a table (seconds later). So sync first fsyncs every log older than the
// current one that it has not synced before (logs do not change once they
// are not current; a flushed one may be gone, and then its table holds
// it), then the current ones.
func (e *badgerEngine) sync() error {
	if err := e.syncOldLogs(); err != nil {
		return fmt.Errorf("sync catalog: %w", err)
	}
	if err := e.db.Sync(); err != nil {
		return fmt.Errorf("sync catalog: %w", err)
	}
	return nil
}

// syncOldLogs fsyncs the memtable logs (NNNNN.mem) and value logs
// (NNNNNN.vlog) below the highest of their kind that no earlier call
// synced.
func (e *badgerEngine) syncOldLogs() error {
	entries, err := os.ReadDir(e.dir)
	if err != nil {
		return err
	}
	type log struct {
		name string
		fid  int64
	}
	byExt := map[string][]log{}
	for _, d := range entries {
		ext := filepath.Ext(d.Name())
		if ext != ".mem" && ext != ".vlog" {
			continue
		}
		fid, err := strconv.ParseInt(strings.TrimSuffix(d.Name(), ext), 10, 64)
		if err != nil {
			continue
		}
		byExt[ext] = append(byExt[ext], log{d.Name(), fid})
	}
	e.logsMu.Lock()
	defer e.logsMu.Unlock()
	present := map[string]bool{}
	for _, logs := range byExt {
		for _, l := range logs {
			present[l.name] = true
		}
	}
	for name := range e.syncedLogs {
		if !present[name] {
			delete(e.syncedLogs, name) // flushed and removed: forget it
		}
	}
	for _, logs := range byExt {
		var top int64 = -1
		for _, l := range logs {
			top = max(top, l.fid)
		}
		for _, l := range logs {
			if l.fid == top || e.syncedLogs[l.name] {
				continue
			}
			f, err := os.Open(filepath.Join(e.dir, l.name))
			if errors.Is(err, os.ErrNotExist) {
				continue // flushed into a table meanwhile
			}
			if err != nil {
				return err
			}
			err = f.Sync()
			f.Close()
			if err != nil {
				return err
			}
			e.syncedLogs[l.name] = true
		}
	}
	return nil
}
