package meta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Store is the Badger catalog. It owns the database, the ID sequence and
// value-log GC; callers see it only through Update and View closures, so a
// *badger.Txn never leaves this package.
type Store struct {
	db  *badger.DB
	seq *badger.Sequence

	records recordCache

	dir        string
	logsMu     sync.Mutex
	syncedLogs map[string]bool // GUARDED_BY(logsMu); logs no longer current, synced (see Sync)

	stopGC chan struct{}
	gcDone sync.WaitGroup
}

// Options configures Open.
type Options struct {
	Dir string
	// GCInterval is how often the value log is garbage-collected; zero
	// means every five minutes.
	GCInterval time.Duration
	Logger     *slog.Logger
}

// maxTxnAttempts bounds the retries of a conflicting transaction. Every
// commit is an fsync, so while a key is hot (a popular blob's reference
// count, pinned by many download sessions at once) one transaction can
// lose a dozen rounds in a row: eight writers on one key need up to 16
// attempts. The bound is for livelock, not for load; with the backoff
// capped at 12.8 ms it is reached after about 0.7 s.
const maxTxnAttempts = 64

// Open opens (creating if needed) the catalog in opts.Dir.
func Open(opts Options) (*Store, error) {
	bo := badger.DefaultOptions(opts.Dir).
		// Writes are synced where it matters (Update), not for every
		// bookkeeping transaction (UpdateBuffered): see Update.
		WithSyncWrites(false).
		WithLogger(nil).
		WithNumVersionsToKeep(1).
		// The catalog is small; Badger's defaults size memtables and
		// caches for much larger data sets.
		WithMemTableSize(8 << 20).
		WithBlockCacheSize(4 << 20).
		WithIndexCacheSize(2 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", opts.Dir, err)
	}
	seq, err := db.GetSequence(sequenceKey(), 64)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open catalog %s: id sequence: %w", opts.Dir, err)
	}
	s := &Store{db: db, seq: seq, stopGC: make(chan struct{}), dir: opts.Dir, syncedLogs: map[string]bool{}}
	interval := opts.GCInterval
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s.gcDone.Add(1)
	go s.runValueLogGC(interval, logger)
	return s, nil
}

func (s *Store) runValueLogGC(interval time.Duration, logger *slog.Logger) {
	defer s.gcDone.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stopGC:
			return
		case <-t.C:
			for {
				err := s.db.RunValueLogGC(0.5)
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

// Close releases the sequence and closes the database.
func (s *Store) Close() error {
	close(s.stopGC)
	s.gcDone.Wait()
	errSeq := s.seq.Release()
	errDB := s.db.Close()
	return errors.Join(errSeq, errDB)
}

// NextID returns a fresh ID, never zero and never reused. IDs double as
// inode numbers in the mount, so they must be stable and unique.
func (s *Store) NextID() (uint64, error) {
	for {
		id, err := s.seq.Next()
		if err != nil {
			return 0, fmt.Errorf("id sequence: %w", err)
		}
		if id != 0 {
			return id, nil
		}
	}
}

// Update runs fn in a read-write transaction and commits it durably: the
// transaction, and every one committed before it, is on disk when Update
// returns. On a conflict with a concurrent transaction fn is run again
// from scratch, a bounded number of times with jittered backoff, so fn
// must not have side effects outside the transaction.
func (s *Store) Update(fn func(tx *Tx) error) error {
	if err := s.UpdateBuffered(fn); err != nil {
		return err
	}
	return s.Sync()
}

// UpdateBuffered is Update without waiting for the disk: a power cut may
// lose the transaction, and only together with everything committed after
// it (the log is written in order; see Sync for the one exception, a
// memtable switch within the same unsynced stretch). A kill of the
// process loses nothing: the transaction is in the kernel when this
// returns. The next Sync, or Update, makes it durable. For bookkeeping that a crash makes moot
// anyway — the progress of a transfer, a session's expiry — it saves an
// fsync per call.
func (s *Store) UpdateBuffered(fn func(tx *Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.db.Update(func(txn *badger.Txn) error { return fn(&Tx{txn: txn, s: s}) })
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
		if attempt+1 >= maxTxnAttempts {
			return ErrConflict
		}
		backoff := time.Duration(50<<min(attempt, 8)) * time.Microsecond
		time.Sleep(backoff/2 + rand.N(backoff))
	}
}

// View runs fn in a read-only transaction (a consistent snapshot).
func (s *Store) View(fn func(tx *Tx) error) error {
	return s.db.View(func(txn *badger.Txn) error { return fn(&Tx{txn: txn, s: s}) })
}

// Tx is a transaction seen through typed record methods.
type Tx struct {
	txn *badger.Txn
	s   *Store
	// written holds the keys this transaction put or deleted through
	// put and del: reading them back must see the pending value, which
	// the record cache knows nothing of.
	written map[string]bool
}

func (tx *Tx) get(key []byte, v any) error {
	item, err := tx.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	b, err := item.ValueCopy(nil)
	if err != nil {
		return err
	}
	return decode(key, b, v)
}

func (tx *Tx) getRaw(key []byte) ([]byte, error) {
	item, err := tx.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func (tx *Tx) put(key []byte, v any) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	tx.wrote(key)
	return tx.txn.Set(key, b)
}

func (tx *Tx) del(key []byte) error {
	tx.wrote(key)
	return tx.txn.Delete(key)
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

// scan calls fn for every key under prefix, in key order, with a copy of
// the value. fn returning errStop ends the scan without error.
func (tx *Tx) scan(prefix []byte, keysOnly bool, fn func(key, val []byte) error) error {
	o := badger.DefaultIteratorOptions
	o.Prefix = prefix
	o.PrefetchValues = !keysOnly
	it := tx.txn.NewIterator(o)
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		var val []byte
		if !keysOnly {
			var err error
			if val, err = item.ValueCopy(nil); err != nil {
				return err
			}
		}
		if err := fn(item.KeyCopy(nil), val); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

var errStop = errors.New("stop scan")

func scanRecords[T any](tx *Tx, prefix []byte) ([]T, error) {
	if !cacheable(prefix) {
		var out []T
		err := tx.scan(prefix, false, func(k, v []byte) error {
			var r T
			if err := decode(k, v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
		return out, err
	}
	// As getRecord, record by record: a listing of an item whose files
	// did not change decodes nothing.
	var out []T
	o := badger.DefaultIteratorOptions
	o.Prefix = prefix
	o.PrefetchValues = false
	it := tx.txn.NewIterator(o)
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		r, err := decodeCached[T](tx, it.Item())
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, nil
}

func getRecord[T any](tx *Tx, key []byte) (*T, error) {
	if !cacheable(key) {
		var r T
		if err := tx.get(key, &r); err != nil {
			return nil, err
		}
		return &r, nil
	}
	item, err := tx.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return decodeCached[T](tx, item)
}

// decodeCached decodes a record through the record cache. A key this
// transaction wrote is decoded from its pending value, never cached.
func decodeCached[T any](tx *Tx, item *badger.Item) (*T, error) {
	key := item.Key()
	pending := tx.written[string(key)]
	if !pending {
		if v, ok := tx.s.records.get(key, item.Version()); ok {
			if c, ok := copyRecord(v); ok {
				if r, ok := c.(*T); ok {
					return r, nil // a copy: callers change their records
				}
			}
		}
	}
	b, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	var r T
	if err := decode(key, b, &r); err != nil {
		return nil, err
	}
	if c, ok := copyRecord(&r); ok && !pending {
		tx.s.records.put(key, item.Version(), c)
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

func (tx *Tx) putID(key []byte, id uint64) error { return tx.txn.Set(key, u64(nil, id)) }

// ---- libraries and backings

func (tx *Tx) Library(id uint64) (*Library, error) { return getRecord[Library](tx, libraryKey(id)) }
func (tx *Tx) Libraries() ([]Library, error)       { return scanRecords[Library](tx, libraryPrefix()) }
func (tx *Tx) PutLibrary(l *Library) error         { return tx.put(libraryKey(l.ID), l) }
func (tx *Tx) DeleteLibrary(id uint64) error       { return tx.del(libraryKey(id)) }

// LibraryIDByName looks a library up by name, case-insensitively.
func (tx *Tx) LibraryIDByName(name string) (uint64, error) { return tx.getID(libraryNameKey(name)) }
func (tx *Tx) PutLibraryName(name string, id uint64) error { return tx.putID(libraryNameKey(name), id) }
func (tx *Tx) DeleteLibraryName(name string) error         { return tx.del(libraryNameKey(name)) }

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
func (tx *Tx) PutItem(it *Item) error        { return tx.put(itemKey(it.ID), it) }
func (tx *Tx) DeleteItem(id uint64) error    { return tx.del(itemKey(id)) }

// ItemIDByName looks an item up in its library, case-insensitively.
func (tx *Tx) ItemIDByName(libID uint64, name string) (uint64, error) {
	return tx.getID(itemNameKey(libID, name))
}
func (tx *Tx) PutItemName(libID uint64, name string, id uint64) error {
	return tx.putID(itemNameKey(libID, name), id)
}
func (tx *Tx) DeleteItemName(libID uint64, name string) error {
	return tx.del(itemNameKey(libID, name))
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

func (tx *Tx) File(itemID uint64, name string) (*File, error) {
	return getRecord[File](tx, fileKey(itemID, name))
}
func (tx *Tx) Files(itemID uint64) ([]File, error) {
	return scanRecords[File](tx, fileTablePrefix(itemID))
}
func (tx *Tx) AllFiles() ([]File, error)                   { return scanRecords[File](tx, filePrefix()) }
func (tx *Tx) PutFile(f *File) error                       { return tx.put(fileKey(f.ItemID, f.Name), f) }
func (tx *Tx) DeleteFile(itemID uint64, name string) error { return tx.del(fileKey(itemID, name)) }

// ---- update sessions

func (tx *Tx) UpdateSession(id uint64) (*UpdateSession, error) {
	return getRecord[UpdateSession](tx, updateKey(id))
}
func (tx *Tx) UpdateSessions() ([]UpdateSession, error) {
	return scanRecords[UpdateSession](tx, updatePrefix())
}
func (tx *Tx) PutUpdateSession(s *UpdateSession) error { return tx.put(updateKey(s.ID), s) }

// DeleteUpdateSession removes the session, its pending files and their
// staged bytes.
func (tx *Tx) DeleteUpdateSession(id uint64) error {
	if err := tx.deletePrefix(updateFilePrefix(id)); err != nil {
		return err
	}
	if err := tx.deletePrefix(stagedBytesPrefix(id)); err != nil {
		return err
	}
	return tx.del(updateKey(id))
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
	return tx.txn.Set(stagedBytesKey(sessionID, name), b)
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
func (tx *Tx) PutDownloadSession(s *DownloadSession) error { return tx.put(downloadKey(s.ID), s) }

// DeleteDownloadSession removes the session and its pinned files.
func (tx *Tx) DeleteDownloadSession(id uint64) error {
	if err := tx.deletePrefix(downloadFilePrefix(id)); err != nil {
		return err
	}
	return tx.del(downloadKey(id))
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

// ---- expiry index

func (tx *Tx) PutExpiry(e ExpiryEntry) error { return tx.txn.Set(expiryKey(e.At, e.Kind, e.ID), nil) }
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

func (tx *Tx) ClientToken(op byte, token string) (*ClientToken, error) {
	return getRecord[ClientToken](tx, clientTokenKey(op, token))
}

func (tx *Tx) PutClientToken(op byte, token string, ct *ClientToken) error {
	b, err := encode(ct)
	if err != nil {
		return err
	}
	return tx.txn.SetEntry(badger.NewEntry(clientTokenKey(op, token), b).WithTTL(ClientTokenTTL))
}

// ---- API ids

// ObjectKind tags what an API id (UUID) names.
type ObjectKind byte

const (
	LibraryObject         ObjectKind = kindLibrary
	ItemObject            ObjectKind = kindItem
	UpdateSessionObject   ObjectKind = kindUpdate
	DownloadSessionObject ObjectKind = kindDownload
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

func (tx *Tx) PutUUID(uuid string, kind ObjectKind, id uint64) error {
	return tx.txn.Set(uuidKey(uuid), u64([]byte{byte(kind)}, id))
}
func (tx *Tx) DeleteUUID(uuid string) error { return tx.del(uuidKey(uuid)) }

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
		if err := tx.txn.Set(inlineBlobKey(k.BackingID, k.SHA256), data); err != nil {
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
	var keys [][]byte
	if err := tx.scan(prefix, true, func(k, _ []byte) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.del(k); err != nil {
			return err
		}
	}
	return nil
}

// Sync makes every transaction committed so far durable: one that
// returned before Sync was called is on disk when Sync returns.
//
// Badger's own Sync covers the current memtable's log and the current
// value log only. A transaction can sit in an older log: when a memtable
// fills up, the next write moves it to the immutable list and starts a
// new log, and the old one is not synced until a flush has turned it into
// a table (seconds later). So Sync first fsyncs every log older than the
// current one that it has not synced before (logs do not change once they
// are not current; a flushed one may be gone, and then its table holds
// it), then the current ones.
func (s *Store) Sync() error {
	if err := s.syncOldLogs(); err != nil {
		return fmt.Errorf("sync catalog: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync catalog: %w", err)
	}
	return nil
}

// syncOldLogs fsyncs the memtable logs (NNNNN.mem) and value logs
// (NNNNNN.vlog) below the highest of their kind that no earlier call
// synced.
func (s *Store) syncOldLogs() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	type log struct {
		name string
		fid  int64
	}
	byExt := map[string][]log{}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if ext != ".mem" && ext != ".vlog" {
			continue
		}
		fid, err := strconv.ParseInt(strings.TrimSuffix(e.Name(), ext), 10, 64)
		if err != nil {
			continue
		}
		byExt[ext] = append(byExt[ext], log{e.Name(), fid})
	}
	s.logsMu.Lock()
	defer s.logsMu.Unlock()
	present := map[string]bool{}
	for _, logs := range byExt {
		for _, l := range logs {
			present[l.name] = true
		}
	}
	for name := range s.syncedLogs {
		if !present[name] {
			delete(s.syncedLogs, name) // flushed and removed: forget it
		}
	}
	for _, logs := range byExt {
		var top int64 = -1
		for _, l := range logs {
			top = max(top, l.fid)
		}
		for _, l := range logs {
			if l.fid == top || s.syncedLogs[l.name] {
				continue
			}
			f, err := os.Open(filepath.Join(s.dir, l.name))
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
			s.syncedLogs[l.name] = true
		}
	}
	return nil
}
