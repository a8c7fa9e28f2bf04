package meta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Store is the catalog over one engine (kv.go). It owns the engine, the
// ID counter and the record cache; callers see it only through Update and
// View closures, so no engine type leaves this package.
type Store struct {
	engine kvEngine

	records recordCache
	turns   turns // read-write transactions that keep losing get a turn

	idsMu           sync.Mutex
	nextID, idLimit uint64 // GUARDED_BY(idsMu); IDs [nextID, idLimit) are ours to hand out
}

// Options configures Open.
type Options struct {
	// URL names the engine (see Open); empty means Badger in Dir.
	URL string
	Dir string
	// GCInterval is how often Badger's value log is garbage-collected;
	// zero means every five minutes.
	GCInterval time.Duration
	Logger     *slog.Logger
}

// Open opens (creating if needed) the catalog that opts.URL names:
//
//	badger://DIR (or a plain path)          Badger in DIR, one process at a time
//	etcd://HOST:PORT[,HOST:PORT...]/PREFIX  etcd, under PREFIX/ (see kv_etcd.go
//	                                        for TLS and credentials)
//
// With no URL, Badger in opts.Dir. ctx bounds the opening only.
func Open(ctx context.Context, opts Options) (*Store, error) {
	url := opts.URL
	if url == "" {
		if opts.Dir == "" {
			return nil, errors.New("meta: no catalog URL or directory")
		}
		url = opts.Dir
	}
	e, err := openEngine(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{engine: e}
	if err := s.upgrade(ctx); err != nil {
		e.close()
		return nil, fmt.Errorf("catalog %s: %w", e, err)
	}
	return s, nil
}

// formatSteps upgrade catalogs written before an index existed: each runs
// once per catalog, at Open, and is then marked done (a kindFormat key).
// A step must be idempotent: two nodes may run it at once.
var formatSteps = []struct {
	name string
	run  func(ctx context.Context, s *Store) error
}{
	{"downloads-by-item", indexDownloadsByItem},
}

func (s *Store) upgrade(ctx context.Context) error {
	if s.Shared() {
		if err := s.checkNotForeign(ctx); err != nil {
			return err
		}
		// The mark checkNotForeign looks for first, whatever steps ran.
		err := s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.getRaw(formatKey(catalogMark)); !errors.Is(err, ErrNotFound) {
				return err
			}
			return tx.set(formatKey(catalogMark), nil)
		})
		if err != nil {
			return err
		}
	}
	for _, step := range formatSteps {
		err := s.View(ctx, func(tx *Tx) error {
			_, err := tx.getRaw(formatKey(step.name))
			return err
		})
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := step.run(ctx, s); err != nil {
			return fmt.Errorf("upgrade %s: %w", step.name, err)
		}
		if err := s.Update(ctx, func(tx *Tx) error { return tx.set(formatKey(step.name), nil) }); err != nil {
			return fmt.Errorf("upgrade %s: %w", step.name, err)
		}
	}
	return nil
}

// catalogMark is the format key every catalog on a shared engine has.
const catalogMark = "clfs-catalog"

// ErrForeignData: the catalog's place (an etcd prefix) holds keys clfs did
// not write.
var ErrForeignData = errors.New("meta: not a clfs catalog")

// checkNotForeign refuses a shared catalog whose prefix holds keys but no
// format marker, which every clfs catalog on a shared engine has from its
// first Open on: another application's keys, which clfs would read as
// corrupt records and might overwrite.
func (s *Store) checkNotForeign(ctx context.Context) error {
	return s.View(ctx, func(tx *Tx) error {
		marked, other := false, ""
		if err := tx.scan([]byte{kindFormat}, true, func(k, _ []byte) error { marked = true; return errStop }); err != nil {
			return err
		}
		if marked {
			return nil
		}
		if err := tx.scan(nil, true, func(k, _ []byte) error { other = string(k); return errStop }); err != nil {
			return err
		}
		if other != "" {
			return fmt.Errorf("%w: the prefix holds keys clfs did not write (such as %q); another application's, or another system's, data: choose a prefix of its own", ErrForeignData, other)
		}
		return nil
	})
}

// indexDownloadsByItem fills the index of download sessions by item, in
// transactions of a bounded size.
func indexDownloadsByItem(ctx context.Context, s *Store) error {
	var sessions []DownloadSession
	if err := s.View(ctx, func(tx *Tx) (err error) { sessions, err = tx.DownloadSessions(); return err }); err != nil {
		return err
	}
	const batch = 50
	for i := 0; i < len(sessions); i += batch {
		err := s.UpdateBuffered(ctx, func(tx *Tx) error {
			for _, d := range sessions[i:min(i+batch, len(sessions))] {
				if _, err := tx.getRaw(downloadKey(d.ID)); errors.Is(err, ErrNotFound) {
					continue // deleted meanwhile
				} else if err != nil {
					return err
				}
				if err := tx.set(itemDownloadKey(d.ItemID, d.ID), nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// String names the engine (no credentials).
func (s *Store) String() string { return s.engine.String() }

// Close gives back the IDs this Store took and did not use, if no other
// Store took any since, and closes the engine.
func (s *Store) Close() error {
	var errIDs error
	s.idsMu.Lock()
	if s.nextID < s.idLimit {
		next, limit := s.nextID, s.idLimit
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errIDs = runTxn(ctx, s.engine, readWrite, &s.turns, func(t kvTxn) error {
			v, _, err := t.get(sequenceKey())
			if err != nil {
				return err
			}
			if n, err := counterValue(sequenceKey(), v); err != nil || uint64(n) != limit {
				return err // another Store allocated since: keep the gap
			}
			return t.set(sequenceKey(), u64(nil, next))
		})
		cancel()
		if errIDs == nil {
			errIDs = s.engine.sync()
		}
		s.nextID = s.idLimit
	}
	s.idsMu.Unlock()
	return errors.Join(errIDs, s.engine.close())
}

// NextID returns a fresh ID, never zero and never reused. IDs double as
// inode numbers in the mount, so they must be stable and unique. They
// are taken from one counter in batches (the engine's idBatch), so the
// counter is written once per batch, not once per ID, and is no hot key
// when several nodes allocate. The counter is where Badger's sequence
// kept it, in the same format, so homes of earlier releases go on.
func (s *Store) NextID(ctx context.Context) (uint64, error) {
	s.idsMu.Lock()
	defer s.idsMu.Unlock()
	for {
		if s.nextID < s.idLimit {
			id := s.nextID
			s.nextID++
			if id != 0 {
				return id, nil
			}
			continue
		}
		batch := s.engine.idBatch()
		var limit int64
		err := runTxn(ctx, s.engine, readWrite, &s.turns, func(t kvTxn) (err error) {
			limit, err = incrBy(t, sequenceKey(), int64(batch))
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("id sequence: %w", err)
		}
		s.nextID, s.idLimit = uint64(limit)-batch, uint64(limit)
	}
}

// Update runs fn in a read-write transaction and commits it durably: the
// transaction, and every one committed before it, is on disk when Update
// returns. On a conflict with a concurrent transaction fn is run again
// from scratch, a bounded number of times with jittered backoff, so fn
// must not have side effects outside the transaction. A ctx that ends
// stops the retries (its error is returned; nothing was committed).
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	if err := s.UpdateBuffered(ctx, fn); err != nil {
		return err
	}
	return s.Sync()
}

// UpdateBuffered is Update without waiting for the disk. On Badger a
// power cut may lose the transaction, and only together with everything
// committed after it (the log is written in order; see the Badger
// engine's sync for the one exception, a memtable switch within the same
// unsynced stretch). A kill of the process loses nothing: the
// transaction is in the kernel when this returns. The next Sync, or
// Update, makes it durable. For bookkeeping that a crash makes moot
// anyway — the progress of a transfer, a session's expiry — it saves an
// fsync per call. On etcd every commit is durable: it is Update.
func (s *Store) UpdateBuffered(ctx context.Context, fn func(tx *Tx) error) error {
	return runTxn(ctx, s.engine, readWrite, &s.turns, func(t kvTxn) error { return fn(&Tx{t: t, s: s}) })
}

// View runs fn in a read-only transaction: a consistent snapshot, no
// older than the call. On etcd fn may run more than once (a key it read
// from the node's cache had changed meanwhile), as an Update's does: it
// must set its results afresh each time.
func (s *Store) View(ctx context.Context, fn func(tx *Tx) error) error {
	return runTxn(ctx, s.engine, readOnly, nil, func(t kvTxn) error { return fn(&Tx{t: t, s: s}) })
}

// ViewRecent is View for attributes that need not be the cluster's
// latest: on etcd it may answer from this node's copy of the keys, a few
// milliseconds behind the other nodes' commits (as the kernel's caches
// are, which the same watch invalidates), without a round trip. Its own
// node's commits it always sees. On Badger it is View.
func (s *Store) ViewRecent(ctx context.Context, fn func(tx *Tx) error) error {
	return runTxn(ctx, s.engine, readRecent, nil, func(t kvTxn) error { return fn(&Tx{t: t, s: s}) })
}

// DropAll deletes every record of the catalog, at once and for good (the
// etcd engine deletes its prefix; tests use it to clean up).
func (s *Store) DropAll(ctx context.Context) error {
	s.idsMu.Lock()
	s.nextID, s.idLimit = 0, 0
	s.idsMu.Unlock()
	s.records.mu.Lock()
	s.records.entries = nil
	s.records.mu.Unlock()
	return s.engine.dropAll(ctx)
}

// Sync makes every transaction committed so far durable: one that
// returned before Sync was called is on disk when Sync returns.
func (s *Store) Sync() error { return s.engine.sync() }

// Tx is a transaction seen through typed record methods.
type Tx struct {
	t kvTxn
	s *Store
	// written holds the cacheable keys this transaction put or deleted:
	// reading them back must see the pending value, which the record
	// cache knows nothing of.
	written map[string]bool
}

func (tx *Tx) get(key []byte, v any) error {
	b, err := tx.getRaw(key)
	if err != nil {
		return err
	}
	return decode(key, b, v)
}

func (tx *Tx) getRaw(key []byte) ([]byte, error) {
	b, _, err := tx.t.get(key)
	return b, err
}

func (tx *Tx) put(key []byte, v any) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	return tx.set(key, b)
}

// set is the one way a value is written.
func (tx *Tx) set(key, val []byte) error {
	tx.wrote(key)
	return tx.t.set(key, val)
}

func (tx *Tx) del(key []byte) error {
	tx.wrote(key)
	return tx.t.del(key)
}

func (tx *Tx) wrote(key []byte) {
	if !cacheable(key) {
		return
	}
	if tx.written == nil {
		tx.written = map[string]bool{}
	}
	tx.written[string(key)] = true
}

// scan calls fn for every key under prefix, in key order, with its
// value (nil if keysOnly). fn returning errStop ends the scan without
// error.
func (tx *Tx) scan(prefix []byte, keysOnly bool, fn func(key, val []byte) error) error {
	return tx.scanRange(prefix, prefixEnd(prefix), keysOnly, fn)
}

func (tx *Tx) scanRange(begin, end []byte, keysOnly bool, fn func(key, val []byte) error) error {
	err := tx.t.scan(begin, end, keysOnly, func(k []byte, _ uint64, value func() ([]byte, error)) error {
		v, err := value()
		if err != nil {
			return err
		}
		return fn(bytes.Clone(k), v)
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

var errStop = errors.New("stop scan")

func scanRecords[T any](tx *Tx, prefix []byte) ([]T, error) {
	var out []T
	err := tx.t.scan(prefix, prefixEnd(prefix), false, func(k []byte, version uint64, value func() ([]byte, error)) error {
		r, err := decodeCached[T](tx, k, version, value)
		if err != nil {
			return err
		}
		out = append(out, *r)
		return nil
	})
	return out, err
}

// firstRecords is scanRecords of the first n records of [begin, end).
func firstRecords[T any](tx *Tx, begin, end []byte, n int) ([]T, error) {
	var out []T
	if n <= 0 {
		return nil, nil
	}
	err := tx.t.scan(begin, end, false, func(k []byte, version uint64, value func() ([]byte, error)) error {
		r, err := decodeCached[T](tx, k, version, value)
		if err != nil {
			return err
		}
		out = append(out, *r)
		if len(out) == n {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return out, err
}

func getRecord[T any](tx *Tx, key []byte) (*T, error) {
	b, version, err := tx.t.get(key)
	if err != nil {
		return nil, err
	}
	return decodeCached[T](tx, key, version, func() ([]byte, error) { return b, nil })
}

// decodeCached decodes a record, through the record cache if its kind is
// cacheable. A key this transaction wrote is decoded from its pending
// value, never cached.
func decodeCached[T any](tx *Tx, key []byte, version uint64, value func() ([]byte, error)) (*T, error) {
	useCache := cacheable(key) && version != 0 && !tx.written[string(key)]
	if useCache {
		if v, ok := tx.s.records.get(key, version); ok {
			if c, ok := copyRecord(v); ok {
				if r, ok := c.(*T); ok {
					return r, nil // a copy: callers change their records
				}
			}
		}
	}
	val, err := value()
	if err != nil {
		return nil, err
	}
	var r T
	if err := decode(key, val, &r); err != nil {
		return nil, err
	}
	if c, ok := copyRecord(&r); ok && useCache {
		tx.s.records.put(key, version, c) // the map key is a copy
	}
	return &r, nil
}

func (tx *Tx) getID(key []byte) (uint64, error) {
	b, err := tx.getRaw(key)
	if err != nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: key %q: id of %d bytes", ErrCorrupt, key, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

func (tx *Tx) putID(key []byte, id uint64) error { return tx.set(key, u64(nil, id)) }

// ---- libraries and backings

func (tx *Tx) Library(id uint64) (*Library, error) { return getRecord[Library](tx, libraryKey(id)) }
func (tx *Tx) Libraries() ([]Library, error)       { return scanRecords[Library](tx, libraryPrefix()) }

// PutLibrary stores a library and keeps its indexes: its name
// (case-insensitive) and its API id. Whether the name is free is the
// caller's to check (LibraryIDByName).
func (tx *Tx) PutLibrary(l *Library) error {
	old, err := getRecord[Library](tx, libraryKey(l.ID))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := tx.put(libraryKey(l.ID), l); err != nil {
		return err
	}
	var oldName, oldUUID []byte
	if old != nil {
		oldName, oldUUID = libraryNameKey(old.Name), uuidKey(old.UUID)
	}
	if err := tx.reindex(oldName, libraryNameKey(l.Name), u64(nil, l.ID)); err != nil {
		return err
	}
	return tx.reindexUUID(old != nil, oldUUID, l.UUID, LibraryObject, l.ID)
}

// DeleteLibrary removes a library and its indexes. Its items are the
// caller's to delete first.
func (tx *Tx) DeleteLibrary(id uint64) error {
	old, err := getRecord[Library](tx, libraryKey(id))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := tx.reindex(libraryNameKey(old.Name), nil, u64(nil, id)); err != nil {
		return err
	}
	if err := tx.reindexUUID(true, uuidKey(old.UUID), "", LibraryObject, id); err != nil {
		return err
	}
	if old.Deleting {
		if err := tx.del(hiddenKey(LibraryObject, id)); err != nil {
			return err
		}
	}
	return tx.del(libraryKey(id))
}

// LibraryIDByName looks a library up by name, case-insensitively.
func (tx *Tx) LibraryIDByName(name string) (uint64, error) { return tx.getID(libraryNameKey(name)) }

// reindex moves an index entry whose value is val from oldKey (nil: none)
// to newKey (nil: none). The old entry goes only if it still holds val:
// another record may have taken the name meanwhile (a rename over it,
// earlier in the same transaction).
func (tx *Tx) reindex(oldKey, newKey, val []byte) error {
	if oldKey != nil && newKey != nil && bytes.Equal(oldKey, newKey) {
		return nil
	}
	if oldKey != nil {
		cur, err := tx.getRaw(oldKey)
		switch {
		case err == nil && bytes.Equal(cur, val):
			if err := tx.del(oldKey); err != nil {
				return err
			}
		case err != nil && !errors.Is(err, ErrNotFound):
			return err
		}
	}
	if newKey == nil {
		return nil
	}
	return tx.set(newKey, val)
}

// reindexUUID keeps the API id index of a record that had (if had) the
// key oldKey and now has the id uuid ("": none).
func (tx *Tx) reindexUUID(had bool, oldKey []byte, uuid string, kind ObjectKind, id uint64) error {
	if !had {
		oldKey = nil
	} else if len(oldKey) == 1 { // the record had no API id
		oldKey = nil
	}
	var newKey []byte
	if uuid != "" {
		newKey = uuidKey(uuid)
	}
	return tx.reindex(oldKey, newKey, u64([]byte{byte(kind)}, id))
}

func (tx *Tx) Backing(id uint64) (*Backing, error) { return getRecord[Backing](tx, backingKey(id)) }
func (tx *Tx) Backings() ([]Backing, error)        { return scanRecords[Backing](tx, backingPrefix()) }
func (tx *Tx) BackingIDByRoot(root string) (uint64, error) {
	return tx.getID(backingRootKey(root))
}

func (tx *Tx) PutBacking(b *Backing) error {
	if err := tx.put(backingKey(b.ID), b); err != nil {
		return err
	}
	return tx.putID(backingRootKey(b.Root), b.ID)
}

// ---- items

func (tx *Tx) Item(id uint64) (*Item, error) { return getRecord[Item](tx, itemKey(id)) }
func (tx *Tx) Items() ([]Item, error)        { return scanRecords[Item](tx, itemPrefix()) }

// PutItem stores an item and keeps its indexes: its name in its library
// (case-insensitive) and its API id. Whether the name is free is the
// caller's to check (ItemIDByName).
func (tx *Tx) PutItem(it *Item) error {
	old, err := getRecord[Item](tx, itemKey(it.ID))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := tx.put(itemKey(it.ID), it); err != nil {
		return err
	}
	var oldName, oldUUID []byte
	if old != nil {
		oldName, oldUUID = itemNameKey(old.LibraryID, old.Name), uuidKey(old.UUID)
	}
	if err := tx.reindex(oldName, itemNameKey(it.LibraryID, it.Name), u64(nil, it.ID)); err != nil {
		return err
	}
	return tx.reindexUUID(old != nil, oldUUID, it.UUID, ItemObject, it.ID)
}

// DeleteItem removes an item and its indexes. Its files and sessions are
// the caller's to end and delete first (their content references are
// sessionmgr's bookkeeping).
func (tx *Tx) DeleteItem(id uint64) error {
	old, err := getRecord[Item](tx, itemKey(id))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := tx.reindex(itemNameKey(old.LibraryID, old.Name), nil, u64(nil, id)); err != nil {
		return err
	}
	if err := tx.reindexUUID(true, uuidKey(old.UUID), "", ItemObject, id); err != nil {
		return err
	}
	if old.Deleting {
		if err := tx.del(hiddenKey(ItemObject, id)); err != nil {
			return err
		}
	}
	if err := tx.del(tableStampKey(old.Table())); err != nil {
		return err
	}
	return tx.del(itemKey(id))
}

// ---- libraries and items being deleted
//
// A library or item with many records cannot go in one transaction on
// etcd (128 keys). Its deletion is two steps instead (sessionmgr's
// sweep.go): Hide, one small transaction, takes its name and API id away
// and marks it Deleting, so that for every client it is gone at once;
// then what it holds goes in bounded transactions, and last the record
// itself (DeleteItem, DeleteLibrary). The hidden index ('Z') lists what
// is hidden, so that a deletion a crash cut short is found and finished.

// HideItem takes an item's name and API id away, marks it Deleting and
// lists it as hidden. Its name is free for a new item at once.
func (tx *Tx) HideItem(id uint64) error {
	it, err := tx.Item(id)
	if err != nil || it.Deleting {
		return err
	}
	if err := tx.reindex(itemNameKey(it.LibraryID, it.Name), nil, u64(nil, id)); err != nil {
		return err
	}
	if err := tx.reindexUUID(true, uuidKey(it.UUID), "", ItemObject, id); err != nil {
		return err
	}
	it.Deleting = true
	if err := tx.put(itemKey(id), it); err != nil {
		return err
	}
	return tx.set(hiddenKey(ItemObject, id), nil)
}

// HideLibrary is HideItem for a library; its items keep their records
// and indexes until they are deleted in turn (their library being
// Deleting hides them: sessionmgr checks it).
func (tx *Tx) HideLibrary(id uint64) error {
	lib, err := tx.Library(id)
	if err != nil || lib.Deleting {
		return err
	}
	if err := tx.reindex(libraryNameKey(lib.Name), nil, u64(nil, id)); err != nil {
		return err
	}
	if err := tx.reindexUUID(true, uuidKey(lib.UUID), "", LibraryObject, id); err != nil {
		return err
	}
	lib.Deleting = true
	if err := tx.put(libraryKey(id), lib); err != nil {
		return err
	}
	return tx.set(hiddenKey(LibraryObject, id), nil)
}

// Hidden is a library or item being deleted, a file table being built or
// to be swept, or a download session whose pins are being dropped.
type Hidden struct {
	Kind ObjectKind // LibraryObject, ItemObject, FileTableObject or DownloadSessionObject
	ID   uint64
	// Builder is the update session building a file table (BuildTable),
	// 0 for garbage.
	Builder uint64
}

// HiddenRecords lists up to n download sessions' pins, file tables, items
// and libraries being deleted (or built), in that order.
func (tx *Tx) HiddenRecords(n int) ([]Hidden, error) {
	var out []Hidden
	for _, kind := range []ObjectKind{DownloadSessionObject, FileTableObject, ItemObject, LibraryObject} {
		prefix := []byte{kindHidden, byte(kind)}
		err := tx.scan(prefix, kind != FileTableObject, func(k, v []byte) error {
			if len(k) != 2+8 || (len(v) != 0 && len(v) != 8) {
				return fmt.Errorf("%w: key %q", ErrCorrupt, k)
			}
			h := Hidden{Kind: kind, ID: binary.BigEndian.Uint64(k[2:])}
			if len(v) == 8 {
				h.Builder = binary.BigEndian.Uint64(v)
			}
			out = append(out, h)
			if len(out) >= n {
				return errStop
			}
			return nil
		})
		if err != nil || len(out) >= n {
			return out, err
		}
	}
	return out, nil
}

// FirstItemIDs returns up to n of a library's items, in name order.
func (tx *Tx) FirstItemIDs(libID uint64, n int) ([]uint64, error) {
	return tx.ItemIDsAfter(libID, "", n)
}

// ItemIDsAfter is FirstItemIDs of the names after after (see
// FilesAfter).
func (tx *Tx) ItemIDsAfter(libID uint64, after string, n int) ([]uint64, error) {
	prefix := itemNamePrefix(libID)
	begin := prefix
	if after != "" {
		begin = append(itemNameKey(libID, after), 0)
	}
	var ids []uint64
	err := tx.scanRange(begin, prefixEnd(prefix), false, func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: key %q", ErrCorrupt, k)
		}
		ids = append(ids, binary.BigEndian.Uint64(v))
		if len(ids) >= n {
			return errStop
		}
		return nil
	})
	return ids, err
}

// ItemIDByName looks an item up in its library, case-insensitively.
func (tx *Tx) ItemIDByName(libID uint64, name string) (uint64, error) {
	return tx.getID(itemNameKey(libID, name))
}

// ItemIDs lists the items of one library in name order.
func (tx *Tx) ItemIDs(libID uint64) ([]uint64, error) {
	var ids []uint64
	err := tx.scan(itemNamePrefix(libID), false, func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: key %q", ErrCorrupt, k)
		}
		ids = append(ids, binary.BigEndian.Uint64(v))
		return nil
	})
	return ids, err
}

// ---- committed files
//
// An item's files live in its file table, whose id is Item.Table: the
// item's own id, or since a commit too large for one transaction one of
// its own (UseTable). Every change to a table rewrites its stamp.

func (tx *Tx) File(it *Item, name string) (*File, error) {
	return getRecord[File](tx, fileKey(it.Table(), name))
}
func (tx *Tx) Files(it *Item) ([]File, error) {
	return scanRecords[File](tx, fileTablePrefix(it.Table()))
}

// FirstFiles returns up to n files of an item, in name order: what one
// bounded transaction can handle.
func (tx *Tx) FirstFiles(it *Item, n int) ([]File, error) {
	return tx.TableFilesAfter(it.Table(), "", n)
}

// FilesAfter is FirstFiles of the names after after ("": from the
// first). A sweep goes on from where it was: on etcd a range read steps
// over every key deleted in it since the last compaction, and starting
// each batch from the first name made deleting 10,000 records quadratic.
func (tx *Tx) FilesAfter(it *Item, after string, n int) ([]File, error) {
	return tx.TableFilesAfter(it.Table(), after, n)
}

// TableFilesAfter is FilesAfter of a file table by its id: one being
// built or swept, which no item names.
func (tx *Tx) TableFilesAfter(table uint64, after string, n int) ([]File, error) {
	prefix := fileTablePrefix(table)
	begin := prefix
	if after != "" {
		begin = append(fileKey(table, after), 0)
	}
	return firstRecords[File](tx, begin, prefixEnd(prefix), n)
}

// AllFiles lists the files of every table, with the table each is in.
func (tx *Tx) AllFiles() ([]File, error) {
	var out []File
	err := tx.t.scan(filePrefix(), prefixEnd(filePrefix()), false, func(k []byte, version uint64, value func() ([]byte, error)) error {
		if len(k) < 1+8 {
			return fmt.Errorf("%w: key %q", ErrCorrupt, k)
		}
		f, err := decodeCached[File](tx, k, version, value)
		if err != nil {
			return err
		}
		f.Table = binary.BigEndian.Uint64(k[1:9])
		out = append(out, *f)
		return nil
	})
	return out, err
}

// CountFiles is len(AllFiles()) without reading them.
func (tx *Tx) CountFiles() (int64, error) {
	return tx.t.count(filePrefix(), prefixEnd(filePrefix()))
}

// PutFile stores a file in its item's table.
func (tx *Tx) PutFile(it *Item, f *File) error { return tx.PutTableFile(it.Table(), f) }

// DeleteFile removes a file from its item's table.
func (tx *Tx) DeleteFile(it *Item, name string) error { return tx.DeleteTableFile(it.Table(), name) }

// PutTableFile is PutFile into a table by its id.
func (tx *Tx) PutTableFile(table uint64, f *File) error {
	if err := tx.put(fileKey(table, f.Name), f); err != nil {
		return err
	}
	return tx.stampTable(table)
}

// DeleteTableFile is DeleteFile from a table by its id.
func (tx *Tx) DeleteTableFile(table uint64, name string) error {
	if err := tx.del(fileKey(table, name)); err != nil {
		return err
	}
	return tx.stampTable(table)
}

// stampTable marks the table changed. The write is blind (nothing
// reads the stamp to write it), so writers of one table never conflict
// over it.
func (tx *Tx) stampTable(table uint64) error { return tx.set(tableStampKey(table), nil) }

// TableStamp is the version of the table's last change (0: none since
// the stamp was kept). It is not a count: only equality means anything.
// Reading it makes the transaction conflict with any change to the
// table that commits before it does.
func (tx *Tx) TableStamp(table uint64) (uint64, error) {
	_, version, err := tx.t.get(tableStampKey(table))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	return version, err
}

// BuildTable lists a new file table as hidden, owned by the update
// session that builds it: until UseTable gives it to an item it is
// garbage the moment its builder is gone (a crash), and HiddenRecords
// finds it.
func (tx *Tx) BuildTable(table, sessionID uint64) error {
	return tx.set(hiddenKey(FileTableObject, table), u64(nil, sessionID))
}

// HiddenTable tells whether a table is listed hidden, and by which
// builder (0: garbage). A sweep checks it in each of its transactions: a
// table that UseTable gave an item meanwhile is not garbage.
func (tx *Tx) HiddenTable(table uint64) (builder uint64, hidden bool, err error) {
	v, err := tx.getRaw(hiddenKey(FileTableObject, table))
	switch {
	case errors.Is(err, ErrNotFound):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	case len(v) == 8:
		return binary.BigEndian.Uint64(v), true, nil
	case len(v) == 0:
		return 0, true, nil
	}
	return 0, false, fmt.Errorf("%w: hidden table %d", ErrCorrupt, table)
}

// DropTable lists a table as garbage, to be swept: one that was being
// built and will not be used, or one an item no longer uses.
func (tx *Tx) DropTable(table uint64) error {
	return tx.set(hiddenKey(FileTableObject, table), nil)
}

// UseTable switches an item to a table built for it (BuildTable); its
// old table is garbage from then on. The caller stores the item.
func (tx *Tx) UseTable(it *Item, table uint64) error {
	if err := tx.del(hiddenKey(FileTableObject, table)); err != nil {
		return err
	}
	if err := tx.DropTable(it.Table()); err != nil {
		return err
	}
	it.FileTable = table
	return nil
}

// DeleteTableStamp removes a swept table's stamp, the last of its keys.
func (tx *Tx) DeleteTableStamp(table uint64) error {
	if err := tx.del(tableStampKey(table)); err != nil {
		return err
	}
	return tx.del(hiddenKey(FileTableObject, table))
}

// ---- update sessions

func (tx *Tx) UpdateSession(id uint64) (*UpdateSession, error) {
	return getRecord[UpdateSession](tx, updateKey(id))
}
func (tx *Tx) UpdateSessions() ([]UpdateSession, error) {
	return scanRecords[UpdateSession](tx, updatePrefix())
}

// PutUpdateSession stores the session and keeps its API id and its entry
// in the expiry index.
func (tx *Tx) PutUpdateSession(s *UpdateSession) error { return tx.putSession(updateKey(s.ID), s) }

// DeleteUpdateSession removes the session, its pending files and their
// staged bytes, its expiry entry and its API id, and its item's lock if
// it still holds it.
func (tx *Tx) DeleteUpdateSession(id uint64) error {
	if s, err := tx.UpdateSession(id); err == nil {
		if err := tx.reindex(activeUpdateKey(s.ItemID), nil, u64(nil, id)); err != nil {
			return err
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := tx.deletePrefix(updateFilePrefix(id)); err != nil {
		return err
	}
	if err := tx.deletePrefix(stagedBytesPrefix(id)); err != nil {
		return err
	}
	return tx.deleteSession(updateKey(id), UpdateSessionKind)
}

func (tx *Tx) UpdateSessionFile(sessionID uint64, name string) (*UpdateSessionFile, error) {
	return getRecord[UpdateSessionFile](tx, updateFileKey(sessionID, name))
}
func (tx *Tx) UpdateSessionFiles(sessionID uint64) ([]UpdateSessionFile, error) {
	return scanRecords[UpdateSessionFile](tx, updateFilePrefix(sessionID))
}

// PutUpdateSessionFile stores a pending change. Staged bytes in the
// catalog belong to a record marked Inline; any other record drops them,
// so a re-add or removal cannot leave a previous upload's bytes behind.
func (tx *Tx) PutUpdateSessionFile(f *UpdateSessionFile) error {
	if !f.Inline {
		if err := tx.DeleteStagedBytes(f.SessionID, f.Name); err != nil {
			return err
		}
	}
	return tx.put(updateFileKey(f.SessionID, f.Name), f)
}
func (tx *Tx) DeleteUpdateSessionFile(sessionID uint64, name string) error {
	if err := tx.DeleteStagedBytes(sessionID, name); err != nil {
		return err
	}
	return tx.del(updateFileKey(sessionID, name))
}

// StagedBytes returns the finished bytes of a small upload, or ErrNotFound.
func (tx *Tx) StagedBytes(sessionID uint64, name string) ([]byte, error) {
	return tx.getRaw(stagedBytesKey(sessionID, name))
}
func (tx *Tx) PutStagedBytes(sessionID uint64, name string, b []byte) error {
	return tx.set(stagedBytesKey(sessionID, name), b)
}
func (tx *Tx) DeleteStagedBytes(sessionID uint64, name string) error {
	return tx.del(stagedBytesKey(sessionID, name))
}

// ActiveUpdate returns the ID of the item's ACTIVE update session, or
// ErrNotFound. The key doubles as the per-item lock: two transactions that
// both try to take it conflict, and the retry sees the winner.
func (tx *Tx) ActiveUpdate(itemID uint64) (uint64, error) {
	return tx.getID(activeUpdateKey(itemID))
}
func (tx *Tx) SetActiveUpdate(itemID, sessionID uint64) error {
	return tx.putID(activeUpdateKey(itemID), sessionID)
}
func (tx *Tx) ClearActiveUpdate(itemID uint64) error { return tx.del(activeUpdateKey(itemID)) }

// ---- download sessions

func (tx *Tx) DownloadSession(id uint64) (*DownloadSession, error) {
	return getRecord[DownloadSession](tx, downloadKey(id))
}
func (tx *Tx) DownloadSessions() ([]DownloadSession, error) {
	return scanRecords[DownloadSession](tx, downloadPrefix())
}

// PutDownloadSession stores the session and keeps its API id and its
// entry in the expiry index.
func (tx *Tx) PutDownloadSession(s *DownloadSession) error {
	return tx.putSession(downloadKey(s.ID), s)
}

// DeleteDownloadSession removes the session, its pinned files (their
// content references are the caller's to drop first), its expiry entry
// and its API id.
//
// The files of a session whose pins are still being dropped (Unpinning)
// stay, for the sweep: it deletes them when it is done (DonePins).
func (tx *Tx) DeleteDownloadSession(id uint64) error {
	s, err := tx.DownloadSession(id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil || !s.Unpinning {
		if err := tx.deletePrefix(downloadFilePrefix(id)); err != nil {
			return err
		}
	}
	return tx.deleteSession(downloadKey(id), DownloadSessionKind)
}

// CountDownloadSessionFiles is len(DownloadSessionFiles) without reading
// them.
func (tx *Tx) CountDownloadSessionFiles(sessionID uint64) (int64, error) {
	p := downloadFilePrefix(sessionID)
	return tx.t.count(p, prefixEnd(p))
}

// DownloadSessionFilesAfter returns up to n files of a session after the
// name after ("": from the first), in name order.
func (tx *Tx) DownloadSessionFilesAfter(sessionID uint64, after string, n int) ([]DownloadSessionFile, error) {
	prefix := downloadFilePrefix(sessionID)
	begin := prefix
	if after != "" {
		begin = append(downloadFileKey(sessionID, after), 0)
	}
	return firstRecords[DownloadSessionFile](tx, begin, prefixEnd(prefix), n)
}

// HidePins lists a download session whose pins are too many to drop in
// one transaction as hidden: the sweep drops them in batches.
func (tx *Tx) HidePins(sessionID uint64) error {
	return tx.set(hiddenKey(DownloadSessionObject, sessionID), nil)
}

// DonePins ends HidePins: every pin is dropped. The session's files go
// too if the session itself is gone.
func (tx *Tx) DonePins(sessionID uint64) error {
	if err := tx.del(hiddenKey(DownloadSessionObject, sessionID)); err != nil {
		return err
	}
	s, err := tx.DownloadSession(sessionID)
	if errors.Is(err, ErrNotFound) {
		return tx.deletePrefix(downloadFilePrefix(sessionID))
	}
	if err != nil {
		return err
	}
	s.Unpinning = false
	return tx.PutDownloadSession(s)
}

// sessionIndexed is what the indexes of a session are made of, decoded
// from either kind's record.
type sessionIndexed struct {
	UUID           string `json:"uuid"`
	ItemID         uint64 `json:"item_id"`
	ExpirationTime int64  `json:"expiration_time"`
}

// DownloadSessionsOfItem lists the download sessions of one item (any
// state), by the index PutDownloadSession keeps.
func (tx *Tx) DownloadSessionsOfItem(itemID uint64) ([]DownloadSession, error) {
	var ids []uint64
	err := tx.scan(itemDownloadPrefix(itemID), true, func(k, _ []byte) error {
		if len(k) != 1+8+8 {
			return fmt.Errorf("%w: key %q", ErrCorrupt, k)
		}
		ids = append(ids, binary.BigEndian.Uint64(k[9:]))
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]DownloadSession, 0, len(ids))
	for _, id := range ids {
		s, err := tx.DownloadSession(id)
		if err != nil {
			return nil, err // the index and the records disagree: ErrNotFound
		}
		out = append(out, *s)
	}
	return out, nil
}

func sessionObject(kind SessionKind) ObjectKind {
	if kind == UpdateSessionKind {
		return UpdateSessionObject
	}
	return DownloadSessionObject
}

// putSession stores a session's record under key and moves its expiry
// entry and API id with it.
func (tx *Tx) putSession(key []byte, s Session) error {
	h := s.Header()
	var old sessionIndexed
	b, err := tx.getRaw(key)
	had := err == nil
	if had {
		if err := decode(key, b, &old); err != nil {
			return err
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := tx.put(key, s); err != nil {
		return err
	}
	if !had || old.ExpirationTime != h.ExpirationTime {
		if had {
			if err := tx.del(expiryKey(old.ExpirationTime, s.Kind(), h.ID)); err != nil {
				return err
			}
		}
		if err := tx.set(expiryKey(h.ExpirationTime, s.Kind(), h.ID), nil); err != nil {
			return err
		}
	}
	if s.Kind() == DownloadSessionKind && (!had || old.ItemID != h.ItemID) {
		var oldKey []byte
		if had {
			oldKey = itemDownloadKey(old.ItemID, h.ID)
		}
		if err := tx.reindex(oldKey, itemDownloadKey(h.ItemID, h.ID), nil); err != nil {
			return err
		}
	}
	return tx.reindexUUID(had, uuidKey(old.UUID), h.UUID, sessionObject(s.Kind()), h.ID)
}

// deleteSession removes a session's record, expiry entry and API id.
func (tx *Tx) deleteSession(key []byte, kind SessionKind) error {
	b, err := tx.getRaw(key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var old sessionIndexed
	if err := decode(key, b, &old); err != nil {
		return err
	}
	id := binary.BigEndian.Uint64(key[1:])
	if err := tx.del(expiryKey(old.ExpirationTime, kind, id)); err != nil {
		return err
	}
	if kind == DownloadSessionKind {
		if err := tx.del(itemDownloadKey(old.ItemID, id)); err != nil {
			return err
		}
	}
	if err := tx.reindexUUID(true, uuidKey(old.UUID), "", sessionObject(kind), id); err != nil {
		return err
	}
	return tx.del(key)
}

func (tx *Tx) DownloadSessionFile(sessionID uint64, name string) (*DownloadSessionFile, error) {
	return getRecord[DownloadSessionFile](tx, downloadFileKey(sessionID, name))
}
func (tx *Tx) DownloadSessionFiles(sessionID uint64) ([]DownloadSessionFile, error) {
	return scanRecords[DownloadSessionFile](tx, downloadFilePrefix(sessionID))
}
func (tx *Tx) PutDownloadSessionFile(f *DownloadSessionFile) error {
	return tx.put(downloadFileKey(f.SessionID, f.Name), f)
}

// ---- either kind of session

// CreateSession stores a new session under an ID from NextID, which no
// record has yet: its record is not read first (the commit still checks
// that it was absent).
func (tx *Tx) CreateSession(s Session) error {
	key := updateKey(s.Header().ID)
	if s.Kind() == DownloadSessionKind {
		key = downloadKey(s.Header().ID)
	}
	tx.t.absent(key)
	return tx.PutSession(s)
}

// PutSession stores an update or download session's record.
func (tx *Tx) PutSession(s Session) error {
	switch r := s.(type) {
	case *UpdateSession:
		return tx.PutUpdateSession(r)
	case *DownloadSession:
		return tx.PutDownloadSession(r)
	}
	return fmt.Errorf("meta: no session record of type %T", s)
}

// DeleteSession removes an update or download session's record and what
// is stored under it (DeleteUpdateSession, DeleteDownloadSession).
func (tx *Tx) DeleteSession(s Session) error {
	switch s.(type) {
	case *UpdateSession:
		return tx.DeleteUpdateSession(s.Header().ID)
	case *DownloadSession:
		return tx.DeleteDownloadSession(s.Header().ID)
	}
	return fmt.Errorf("meta: no session record of type %T", s)
}

// ---- expiry index (kept by PutSession and DeleteSession)

// DeleteExpiry removes an entry that names no session at that instant
// (the reaper's cleanup of entries from before the index was kept here).
func (tx *Tx) DeleteExpiry(e ExpiryEntry) error {
	return tx.del(expiryKey(e.At, e.Kind, e.ID))
}

// DueExpiries lists index entries with At <= now, earliest first.
func (tx *Tx) DueExpiries(now int64) ([]ExpiryEntry, error) {
	var out []ExpiryEntry
	err := tx.scan(expiryPrefix(), true, func(k, _ []byte) error {
		at, kind, id, ok := parseExpiryKey(k)
		if !ok {
			return fmt.Errorf("%w: expiry key %q", ErrCorrupt, k)
		}
		if at > now {
			return errStop
		}
		out = append(out, ExpiryEntry{At: at, Kind: kind, ID: id})
		return nil
	})
	return out, err
}

// ---- client tokens

// ClientTokenTTL is how long an idempotent create is remembered.
const ClientTokenTTL = 24 * time.Hour

// clientTokenPrune is how many expired tokens each PutClientToken
// removes: more than one, so the expired ones cannot pile up.
const clientTokenPrune = 4

// ClientToken returns what an idempotent create under token produced, or
// ErrNotFound if none did within ClientTokenTTL.
func (tx *Tx) ClientToken(op byte, token string) (*ClientToken, error) {
	ct, err := getRecord[ClientToken](tx, clientTokenKey(op, token))
	if err != nil {
		return nil, err
	}
	if ct.Expires != 0 && time.Now().UnixNano() >= ct.Expires {
		return nil, ErrNotFound
	}
	return ct, nil
}

// PutClientToken remembers a create for ClientTokenTTL (ct.Expires is
// set here). Expiry is an index ordered by time, engine-neutral: each put
// removes a few tokens that are past it. (Releases before the index set
// Badger's own TTL on the record; those records carry no Expires and
// Badger still drops them.)
func (tx *Tx) PutClientToken(op byte, token string, ct *ClientToken) error {
	now := time.Now().UnixNano()
	if old, err := getRecord[ClientToken](tx, clientTokenKey(op, token)); err == nil && old.Expires != 0 {
		if err := tx.del(clientTokenExpiryKey(old.Expires, op, token)); err != nil {
			return err
		}
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	c := *ct
	c.Expires = now + int64(ClientTokenTTL)
	if err := tx.put(clientTokenKey(op, token), &c); err != nil {
		return err
	}
	if err := tx.set(clientTokenExpiryKey(c.Expires, op, token), nil); err != nil {
		return err
	}
	return tx.pruneClientTokens(now, clientTokenPrune)
}

// pruneClientTokens removes at most n tokens that expired before now.
func (tx *Tx) pruneClientTokens(now int64, n int) error {
	var due [][]byte
	end := u64([]byte{kindClientTokenExpiry}, uint64(now))
	err := tx.scanRange(clientTokenExpiryPrefix(), end, true, func(k, _ []byte) error {
		due = append(due, k)
		if len(due) >= n {
			return errStop
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range due {
		at, op, token, ok := parseClientTokenExpiryKey(k)
		if !ok {
			return fmt.Errorf("%w: client token expiry key %q", ErrCorrupt, k)
		}
		ct, err := getRecord[ClientToken](tx, clientTokenKey(op, token))
		switch {
		case err == nil && ct.Expires == at:
			if err := tx.del(clientTokenKey(op, token)); err != nil {
				return err
			}
		case err != nil && !errors.Is(err, ErrNotFound):
			return err
		}
		if err := tx.del(k); err != nil {
			return err
		}
	}
	return nil
}

// ---- API ids

// ObjectKind tags what an API id (UUID) names.
type ObjectKind byte

const (
	LibraryObject         ObjectKind = kindLibrary
	ItemObject            ObjectKind = kindItem
	UpdateSessionObject   ObjectKind = kindUpdate
	DownloadSessionObject ObjectKind = kindDownload
	// FileTableObject has no API id: it tags file tables in the hidden
	// index.
	FileTableObject ObjectKind = kindFile
)

// ResolveUUID returns the internal ID an API id names, if it names an
// object of that kind.
func (tx *Tx) ResolveUUID(uuid string, kind ObjectKind) (uint64, error) {
	b, err := tx.getRaw(uuidKey(uuid))
	if err != nil {
		return 0, err
	}
	if len(b) != 9 {
		return 0, fmt.Errorf("%w: uuid %q", ErrCorrupt, uuid)
	}
	if ObjectKind(b[0]) != kind {
		return 0, ErrNotFound
	}
	return binary.BigEndian.Uint64(b[1:]), nil
}

// API ids are indexed by PutLibrary, PutItem and PutSession.

// ---- content references

// AddContentRef changes a blob's reference count by delta and returns the
// new count. The record disappears when the count reaches zero, which is
// what tells the content store the blob may go.
func (tx *Tx) AddContentRef(k ContentKey, delta, size int64) (int64, error) {
	key := contentRefKey(k.BackingID, k.SHA256)
	var ref ContentRef
	err := tx.get(key, &ref)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	if err != nil && delta > 0 && tx.s.Shared() {
		if err := tx.revive(k); err != nil {
			return 0, err
		}
	}
	ref.Refs += delta
	if size > 0 {
		ref.Size = size
	}
	if ref.Refs <= 0 {
		if ref.Inline {
			if err := tx.del(inlineBlobKey(k.BackingID, k.SHA256)); err != nil {
				return 0, err
			}
		}
		return 0, tx.del(key)
	}
	return ref.Refs, tx.put(key, &ref)
}

// AddInlineContent takes a reference on a blob, storing data inline in the
// catalog if the blob is not stored yet (inline or as a file). It returns
// the new count.
func (tx *Tx) AddInlineContent(k ContentKey, data []byte) (int64, error) {
	key := contentRefKey(k.BackingID, k.SHA256)
	var ref ContentRef
	err := tx.get(key, &ref)
	if errors.Is(err, ErrNotFound) {
		ref = ContentRef{Size: int64(len(data)), Inline: true}
		if err := tx.set(inlineBlobKey(k.BackingID, k.SHA256), data); err != nil {
			return 0, err
		}
	} else if err != nil {
		return 0, err
	}
	ref.Refs++
	return ref.Refs, tx.put(key, &ref)
}

// InlineContent returns the bytes of an inline blob, or ErrNotFound.
func (tx *Tx) InlineContent(k ContentKey) ([]byte, error) {
	return tx.getRaw(inlineBlobKey(k.BackingID, k.SHA256))
}

// InlineContents calls fn for every inline blob (fsck).
func (tx *Tx) InlineContents(fn func(k ContentKey, data []byte) error) error {
	return tx.scan([]byte{kindInlineBlob}, false, func(key, val []byte) error {
		if len(key) != 1+8+32 {
			return fmt.Errorf("%w: inline content key %q", ErrCorrupt, key)
		}
		return fn(ContentKey{BackingID: binary.BigEndian.Uint64(key[1:9]), SHA256: bytes.Clone(key[9:])}, val)
	})
}

// ContentRef returns the reference record of a blob, or ErrNotFound.
func (tx *Tx) ContentRef(k ContentKey) (*ContentRef, error) {
	return getRecord[ContentRef](tx, contentRefKey(k.BackingID, k.SHA256))
}

// ContentRefEntry is one referenced blob and its count.
type ContentRefEntry struct {
	Key ContentKey
	Ref ContentRef
}

// ContentRefs lists every referenced blob.
func (tx *Tx) ContentRefs() ([]ContentRefEntry, error) {
	var out []ContentRefEntry
	err := tx.scan(contentRefPrefix(), false, func(k, v []byte) error {
		b, sha, ok := parseContentRefKey(k)
		if !ok {
			return fmt.Errorf("%w: content key %q", ErrCorrupt, k)
		}
		var r ContentRef
		if err := decode(k, v, &r); err != nil {
			return err
		}
		out = append(out, ContentRefEntry{Key: ContentKey{BackingID: b, SHA256: sha}, Ref: r})
		return nil
	})
	return out, err
}

func (k ContentKey) String() string { return fmt.Sprintf("%d/%x", k.BackingID, k.SHA256) }

// Equal reports whether two keys name the same blob.
func (k ContentKey) Equal(o ContentKey) bool {
	return k.BackingID == o.BackingID && bytes.Equal(k.SHA256, o.SHA256)
}

func (tx *Tx) deletePrefix(prefix []byte) error {
	end := prefixEnd(prefix)
	// Records of the range this transaction decoded stay in the record
	// cache under their versions; they are unreachable once deleted.
	return tx.t.delRange(prefix, end)
}
