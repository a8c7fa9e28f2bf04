package meta

import "sync"

// recordCache keeps decoded libraries, items and backings: nearly every
// transaction reads the item it works on (and often its library and
// backing), and decoding them was a sixth of the daemon's CPU in a tar of
// small files. An entry is valid for exactly one committed version of its
// key (Badger's commit timestamp), so a write anywhere makes it stale
// without any invalidation. Only records without slices, maps or pointers
// are cached, so that handing out a shallow copy is handing out a deep one.
type recordCache struct {
	mu      sync.Mutex
	entries map[string]cachedRecord
}

type cachedRecord struct {
	version uint64
	value   any // *T, never handed out
}

// maxCachedRecords bounds the cache; past it an arbitrary entry goes.
const maxCachedRecords = 1 << 14

// cacheable reports whether records under key are cached: they must be
// plain values (see recordCache).
func cacheable(key []byte) bool {
	if len(key) == 0 {
		return false
	}
	switch key[0] {
	case kindLibrary, kindItem, kindBacking:
		return true
	}
	return false
}

func (c *recordCache) get(key []byte, version uint64) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[string(key)]
	if !ok || e.version != version {
		return nil, false
	}
	return e.value, true
}

func (c *recordCache) put(key []byte, version uint64, value any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cachedRecord{}
	}
	if e, ok := c.entries[string(key)]; ok && e.version > version {
		return // an older snapshot's read: keep the newer version
	}
	if len(c.entries) >= maxCachedRecords {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[string(key)] = cachedRecord{version: version, value: value}
}
