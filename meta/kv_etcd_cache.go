package meta

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdCache is this node's copy of the catalog keys it read or saw
// change, each with its ModRevision, kept current by a watch of the
// whole prefix. Without it every key a transaction reads is a round trip
// (half a millisecond on loopback, more between machines): committing a
// file read a dozen keys one by one, and GETATTR of an item directory
// three.
//
// A transaction takes a key it finds here without asking the cluster,
// and remembers the ModRevision as it does for a key it fetched. That
// keeps transactions serializable, because the commit checks every key
// read unchanged: a read-write transaction in its commit, as before, and
// a read-only one that took anything from here in a check of its own (a
// Txn of compares only, which etcd answers without a disk write). A
// check that fails is a conflict like any other: the keys the attempt
// took from here are dropped, and the next attempt fetches them. So a
// stale entry costs a retry, never a wrong answer; and the one kind of
// read that skips the check (ViewRecent: attributes of directories) is
// as recent as the kernel's own caches, which the same node's watch
// invalidates.
//
// An entry is as of a revision (asOf): its value is the key's from that
// revision on, until an event of a later revision for the key says
// otherwise. The watch applies events in revision order and records how
// far it got (applied); a value read at revision r may go in only if
// r ≥ applied, since an event for the key between r and applied went by
// while the key was not here. An entry only ever moves forward. While
// the watch is down the cache is empty and off (applied is 0), so that
// nothing goes stale unseen; it starts again empty.
type etcdCache struct {
	mu      sync.Mutex
	entries map[string]etcdCached // GUARDED_BY(mu)
	bytes   int                   // GUARDED_BY(mu); keys and values held
	applied int64                 // GUARDED_BY(mu); 0: off
}

type etcdCached struct {
	etcdRead
	asOf int64
}

// The cache's bound: past it, an arbitrary eighth of the entries goes.
const (
	etcdCacheMaxEntries = 1 << 17
	etcdCacheMaxBytes   = 32 << 20
)

// revision is how far the watch got: the latest revision the cache can
// answer at (0: off).
func (c *etcdCache) revision() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied
}

// lookup returns k's value at revision rev, if the cache knows it: the
// watch got that far, and the entry's value was k's at rev (written at
// or before it, or absent since then or before).
func (c *etcdCache) lookup(k string, rev int64) (etcdRead, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applied == 0 || rev > c.applied {
		return etcdRead{}, false
	}
	e, ok := c.entries[k]
	if !ok || (e.modRev != 0 && e.modRev > rev) || (e.modRev == 0 && e.asOf > rev) {
		return etcdRead{}, false
	}
	return e.etcdRead, true
}

// offer gives the cache k's value as of revision asOf (read at that
// revision, or written by a commit of that revision).
func (c *etcdCache) offer(k string, r etcdRead, asOf int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offerLocked(k, r, asOf)
}

func (c *etcdCache) offerLocked(k string, r etcdRead, asOf int64) {
	if c.applied == 0 {
		return
	}
	old, ok := c.entries[k]
	switch {
	case ok && asOf <= old.asOf:
		return
	case !ok && asOf < c.applied:
		return
	}
	if ok {
		c.bytes -= len(k) + len(old.val)
	} else if len(c.entries) >= etcdCacheMaxEntries || c.bytes >= etcdCacheMaxBytes {
		c.shedLocked()
	}
	c.entries[k] = etcdCached{etcdRead: r, asOf: asOf}
	c.bytes += len(k) + len(r.val)
}

func (c *etcdCache) shedLocked() {
	n := len(c.entries) / 8
	for k, e := range c.entries {
		if n <= 0 {
			break
		}
		delete(c.entries, k)
		c.bytes -= len(k) + len(e.val)
		n--
	}
}

// drop forgets keys that a transaction took from the cache and then lost
// its commit or check on: one of them is stale.
func (c *etcdCache) drop(keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if e, ok := c.entries[k]; ok {
			delete(c.entries, k)
			c.bytes -= len(k) + len(e.val)
		}
	}
}

// restart empties the cache and turns it on as of revision rev (0: off).
func (c *etcdCache) restart(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = map[string]etcdCached{}
	c.bytes = 0
	c.applied = rev
}

// apply takes one watch response's events, which are whole revisions in
// order, and moves applied past them.
func (c *etcdCache) apply(evs []*clientv3.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applied == 0 {
		return
	}
	for _, ev := range evs {
		rev := ev.Kv.ModRevision
		if ev.Type == clientv3.EventTypeDelete {
			c.offerLocked(string(ev.Kv.Key), etcdRead{}, rev)
		} else {
			c.offerLocked(string(ev.Kv.Key), etcdRead{val: ev.Kv.Value, modRev: rev}, rev)
		}
		if rev > c.applied {
			c.applied = rev
		}
	}
}

// follow keeps the cache current until ctx ends. A broken watch (a
// member gone, a cluster without quorum, a compaction) turns the cache
// off until a new watch starts, from an empty cache.
func (e *etcdEngine) follow(ctx context.Context) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		resp, err := e.cli.Get(ctx, e.prefix, clientv3.WithCountOnly())
		if err == nil {
			rev := resp.Header.Revision
			e.cache.restart(rev)
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			ch := e.cli.Watch(wctx, e.prefix, clientv3.WithRange(e.rangeEnd(nil)), clientv3.WithRev(rev+1))
			for resp := range ch {
				if resp.CompactRevision != 0 || resp.Err() != nil || resp.Canceled {
					break
				}
				pause = 100 * time.Millisecond
				e.cache.apply(resp.Events)
			}
			cancel()
			e.cache.restart(0)
		}
		sleepCtx(ctx, pause)
		pause = min(2*pause, 5*time.Second)
	}
}
