package meta

import (
	"bytes"
	"sync"
)

// recordCache keeps decoded libraries, items, backings and files: nearly
// every transaction reads the item it works on (and often its library and
// backing), and decoding them was a sixth of the daemon's CPU in a tar of
// small files; listing an item's files was half of it in ls -lR. An entry
// is valid for exactly one committed version of its key (the engine's:
// Badger's commit timestamp, etcd's ModRevision), so a write anywhere
// makes it stale without any invalidation. Records go in and out as deep copies (copyRecord).
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
	case kindLibrary, kindItem, kindBacking, kindFile:
		return true
	}
	return false
}

// copyRecord returns a deep copy of a cacheable record; ok is false for
// any other type, which is then not cached.
func copyRecord(v any) (any, bool) {
	switch r := v.(type) {
	case *Library:
		c := *r
		return &c, true
	case *Item:
		c := *r
		return &c, true
	case *Backing:
		c := *r
		return &c, true
	case *File:
		c := *r
		c.SHA256 = bytes.Clone(r.SHA256)
		if r.Requested != nil {
			q := *r.Requested
			c.Requested = &q
		}
		return &c, true
	}
	return nil, false
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
