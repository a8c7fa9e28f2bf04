// Package meta is clfs's catalog: typed records (libraries, items, their
// files, update and download sessions, content references) and their
// indexes, over Badger. It stores, indexes and returns records; it knows
// nothing of the API's rules, which are sessionmgr's, and only sessionmgr
// imports it.
//
// # Records
//
// Records (records.go) are JSON: self-describing, tolerant of fields added
// by later releases, and cheap next to the fsync of a durable write.
// Decoding never panics on arbitrary bytes. Times are Unix nanoseconds;
// counters are plain integers. Update and download session records share
// their first fields (SessionHeader), stored flat.
//
// # Keys
//
// The schema is the one table at the top of keys.go: a one-byte kind
// per kind of key, big-endian integers so that byte order is numeric
// order and prefix scans come out sorted, and one constructor per kind.
// No other package builds keys: callers go through the typed methods of
// Tx. File names are stored verbatim (case-sensitive, as POSIX wants);
// library and item name indexes are case-insensitive because the API's
// find is.
//
// # Transactions
//
// Every access is a closure inside a Store method, so a *badger.Txn never
// leaves the package:
//
//   - Update: read-write, committed durably: it and everything committed
//     before it are on disk when it returns;
//   - UpdateBuffered: the same without waiting for the disk: a kill of
//     the process loses nothing, a power cut may lose it, only together
//     with everything committed after it; sessionmgr uses it for
//     bookkeeping and for namespace changes, which its syncer makes
//     durable within a second;
//   - Sync: every transaction that returned before it is on disk when it
//     returns, including one whose memtable log Badger already switched
//     out (Badger's own Sync covers only the current logs);
//   - View: a read-only, consistent snapshot.
//
// A read-write closure that conflicts with a concurrent transaction is run
// again from scratch, with jittered backoff, at most maxTxnAttempts times:
// it must have no side effects outside its transaction. Values are copied
// out of Badger. Decoded libraries, items, backings and files are cached
// by their commit version (cache.go), so a write anywhere makes an entry
// stale without invalidation. The Store also owns the ID sequence
// (NextID: IDs are never zero nor reused, and double as inode numbers)
// and value-log GC.
//
// # Errors
//
//   - ErrNotFound: no record under the key (a lookup by name or id that
//     misses; a UUID that names an object of another kind);
//   - ErrCorrupt: a stored value or key that cannot be decoded, wrapped
//     with the key;
//   - ErrConflict: a read-write transaction that still conflicted after its
//     retries; nothing of it was committed.
//
// Other errors come from Badger or the disk. sessionmgr turns these into
// the API's errors at one edge (its fromMeta).
//
// # Locking
//
// The record cache's mutex is the package's only one; it is taken inside
// transactions and never held while calling out.
package meta
