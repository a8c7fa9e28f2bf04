// Package meta is clfs's catalog: typed records (libraries, items, their
// files, update and download sessions, content references) and their
// indexes, over a transactional key-value engine: Badger (embedded, the
// default) or etcd (shared by several nodes). It stores, indexes and
// returns records; it knows
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
// # Engines
//
// Store and Tx build records, indexes and counters out of a private
// engine interface (kv.go: get, paged scan of a range, set, delete;
// counters are a get and a set over it), implemented once per engine (kv_badger.go, kv_etcd.go); no
// engine type leaves those files, and one suite (kv_test.go) runs on
// every engine. Open picks the engine by URL.
//
// # Transactions
//
// Every access is a closure inside a Store method, given a context that
// bounds it:
//
//   - Update: read-write, committed durably: it and everything committed
//     before it are on disk when it returns;
//   - UpdateBuffered: the same without waiting for the disk (Badger): a
//     kill of the process loses nothing, a power cut may lose it, only
//     together with everything committed after it; sessionmgr uses it
//     for bookkeeping and for namespace changes, which its syncer makes
//     durable within a second. On etcd every commit is durable;
//   - Sync: every transaction that returned before it is on disk when it
//     returns (on Badger including one whose memtable log was already
//     switched out; a no-op on etcd);
//   - View: a read-only, consistent snapshot.
//
// A read-write closure that conflicts with a concurrent transaction is run
// again from scratch, with jittered backoff, at most maxTxnAttempts times
// or until its context ends: it must have no side effects outside its
// transaction. A context that ends stops a transaction before its commit
// is sent, never while it is in flight (etcd may apply a commit whose
// answer is lost), so the context's error means nothing was committed;
// only the engine's own bound on an attempt (etcd: request-timeout) can
// leave the outcome unknown. One that keeps losing gets a turn (kv.go, turns). A transaction beyond the engine's bounds (etcd: 128 keys
// written or read, 1.5 MiB) fails with ErrTooLarge; it is never split.
// Decoded libraries, items, backings and files are cached by the
// engine's version of their key (cache.go), so a write anywhere, by any
// node, makes an entry stale without invalidation. The Store also owns
// the IDs (NextID: never zero nor reused, doubling as inode numbers;
// taken from a counter in batches).
//
// # Errors
//
//   - ErrNotFound: no record under the key (a lookup by name or id that
//     misses; a UUID that names an object of another kind);
//   - ErrCorrupt: a stored value or key that cannot be decoded, wrapped
//     with the key;
//   - ErrConflict: a read-write transaction that still conflicted after its
//     retries; nothing of it was committed;
//   - ErrTooLarge: a transaction beyond what the engine commits at once;
//     nothing of it was committed.
//
// Other errors come from the engine (the disk, the network) or the
// context. sessionmgr turns these into
// the API's errors at one edge (its fromMeta).
//
// # Locking
//
// Four mutexes, none held while calling out of the package nor across
// each other: the record cache's (taken inside transactions), the
// Store's ID batch (held across the counter's transaction, which takes
// no other lock of this package), the turns of transactions that keep
// losing (kv.go: held for a few lines, never across a transaction; the
// waits it causes are bounded), and the Badger engine's set of synced
// logs.
package meta
