package sessionmgr

import (
	"context"
	"sync"
	"time"

	"clfs/meta"
)

// Durability of namespace changes (issue #13, rule 2), as ext4 does it:
// rename, unlink, mkdir, rmdir, chmod, chown and utimens are committed to
// the catalog at once and in order, but without an fsync each; they
// become durable with the next sync: a commit of content (which syncs,
// and Badger's log is ordered, so it covers everything committed before
// it), Manager.Sync (fsync, fsyncdir), or the syncer, at most
// syncDelay after the first change it has not synced. A kill -9 of the
// daemon loses none of them (the transaction is in the kernel when the
// call returns); a power cut may lose the last second of them, never a
// commit of content that returned.
//
// A blob freed by such a change (an unlink, a rename over a name) is
// deleted only after the change is durable: until then a power cut could
// bring back the catalog's reference to it. If the daemon dies with
// blobs queued, the catalog no longer references them, and the next Open
// sweeps them (recover).

// syncDelay bounds how long a buffered change waits for its sync.
const syncDelay = 500 * time.Millisecond

// durability tracks buffered catalog changes that are not known to be
// on disk yet, and the blobs waiting for them.
type durability struct {
	store *meta.Store

	mu sync.Mutex
	// dirty: a buffered change committed since the last sync started.
	dirty bool // GUARDED_BY(mu)
	// started counts syncs begun; covered is the highest number of a
	// sync that has finished: everything committed before that sync
	// began is durable.
	started, covered uint64      // GUARDED_BY(mu)
	freed            []freedBlob // GUARDED_BY(mu); in order of freeing
	armed            bool        // GUARDED_BY(mu); the syncer will sync

	kick chan struct{} // wakes the syncer; capacity 1
	stop chan struct{}
	done chan struct{}
}

// freedBlob is a blob whose last reference went with a change that was
// committed after sync number after began.
type freedBlob struct {
	key   meta.ContentKey
	after uint64
}

func newDurability(store *meta.Store) *durability {
	return &durability{store: store, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// changed records a buffered change that returned: the syncer makes it
// durable within syncDelay.
func (d *durability) changed() {
	d.mu.Lock()
	d.dirty = true
	d.armLocked()
	d.mu.Unlock()
}

// armLocked wakes the syncer unless it is already due to run. Caller
// holds d.mu.
func (d *durability) armLocked() {
	if d.armed {
		return
	}
	d.armed = true
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// free queues blobs whose last reference went with a buffered change
// that returned; they are deleted after the sync that covers it.
func (d *durability) free(keys []meta.ContentKey) {
	if len(keys) == 0 {
		return
	}
	d.mu.Lock()
	for _, k := range keys {
		d.freed = append(d.freed, freedBlob{key: k, after: d.started})
	}
	d.armLocked()
	d.mu.Unlock()
}

// sync makes every change that returned before it durable.
func (d *durability) sync() error {
	d.mu.Lock()
	d.started++
	n := d.started
	d.dirty = false
	d.mu.Unlock()
	if err := d.store.Sync(); err != nil {
		d.mu.Lock()
		d.dirty = true // still not durable
		d.mu.Unlock()
		return err
	}
	d.mu.Lock()
	d.covered = max(d.covered, n)
	d.mu.Unlock()
	return nil
}

// durableFreed takes the queued blobs whose freeing change is durable.
func (d *durability) durableFreed() []meta.ContentKey {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []meta.ContentKey
	i := 0
	for ; i < len(d.freed) && d.freed[i].after < d.covered; i++ {
		out = append(out, d.freed[i].key)
	}
	d.freed = d.freed[i:]
	return out
}

// pending reports whether a sync would make something durable.
func (d *durability) pending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dirty || (len(d.freed) > 0 && d.freed[len(d.freed)-1].after >= d.covered)
}

// runSyncer is the syncer: idle until a change arms it, then, syncDelay
// later, one sync and the deletion of the blobs it made safe to delete.
// At stop it syncs what is pending.
func (m *Manager) runSyncer() {
	ctx := context.Background() // the syncer's own goroutine: no caller
	d := m.durable
	defer close(d.done)
	for {
		select {
		case <-d.stop:
			m.syncAndDrop(ctx)
			return
		case <-d.kick:
		}
		t := time.NewTimer(syncDelay)
		select {
		case <-d.stop:
			t.Stop()
			m.syncAndDrop(ctx)
			return
		case <-t.C:
		}
		d.mu.Lock()
		d.armed = false
		d.mu.Unlock()
		m.syncAndDrop(ctx)
	}
}

// syncAndDrop syncs if anything is pending, then deletes the blobs whose
// freeing change is durable.
func (m *Manager) syncAndDrop(ctx context.Context) error {
	var err error
	if m.durable.pending() {
		if err = m.durable.sync(); err != nil {
			m.log.Warn("sync catalog", "err", err)
		}
	}
	m.dropUnreferenced(ctx, m.durable.durableFreed())
	return err
}

// Sync makes every change that returned before it durable: namespace
// changes committed without a sync of their own, and with them
// everything else the catalog holds (fsync, fsyncdir). It then deletes
// the blobs those changes freed.
func (m *Manager) Sync(ctx context.Context) error {
	if m.readOnly {
		return nil
	}
	return m.syncAndDrop(ctx)
}

// updateNamespace commits a namespace change: buffered and made durable
// by the syncer, or synced at once under Options.NamespaceSync. The
// caller hands the blobs it freed to freeBlobs afterwards.
func (m *Manager) updateNamespace(ctx context.Context, fn func(tx *meta.Tx) error) error {
	if m.namespaceSync {
		return m.store.Update(ctx, fn)
	}
	return m.store.UpdateBuffered(ctx, fn)
}

// freeBlobs deletes blobs freed by a change committed with
// updateNamespace: at once if it was synced, else after its sync.
func (m *Manager) freeBlobs(ctx context.Context, keys []meta.ContentKey) {
	if m.namespaceSync {
		m.dropUnreferenced(ctx, keys)
		return
	}
	m.durable.free(keys)
}
