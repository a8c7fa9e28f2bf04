package meta

import (
	"context"
	"encoding/binary"
)

// Watching the catalog. On an engine other processes write to (etcd),
// a node learns what the others changed in the namespace — libraries,
// items and their committed files — as they commit, to tell its kernel
// caches (sessionmgr's notify, fs's invalidation). Its own commits are
// left out: it told its caches of those itself.

// CatalogEvent is one record another process created, changed or deleted.
// Exactly one pair is set: Library/PrevLibrary, Item/PrevItem or
// File/PrevFile; the new record is nil when it was deleted, the previous
// one nil when it was created. A previous record the engine no longer
// had (its history compacted) is given with its ids and name only where
// the key holds them (a file's item id and name; a library's or item's
// id), else the event is a Resync.
type CatalogEvent struct {
	// Resync: events may have been lost (the watch fell behind the
	// engine's compacted history, or a record could not be read):
	// anything may have changed.
	Resync bool

	Library, PrevLibrary *Library
	Item, PrevItem       *Item
	File, PrevFile       *File
}

// kvEvent is one key changed by a commit of another process.
type kvEvent struct {
	key, value, prev []byte // prev nil: created, or unknown
	deleted          bool
}

// kvWatcher is implemented by engines other processes write to.
type kvWatcher interface {
	// watch calls fn with the events of each commit of other processes
	// to keys whose kind is in [fromKind, toKind), from now until ctx
	// ends, and with resync when events may have been lost. It returns
	// when ctx ends.
	watch(ctx context.Context, fromKind, toKind byte, fn func(events []kvEvent, resync bool)) error
}

// Watch calls fn with what other processes commit to libraries, items
// and files, in commit order, until ctx ends. fn runs on one goroutine
// and may use the Store. On an engine only this process writes (Badger)
// it returns nil at once: there is nothing to watch.
func (s *Store) Watch(ctx context.Context, fn func([]CatalogEvent)) error {
	w, ok := s.engine.(kvWatcher)
	if !ok {
		return nil
	}
	// 'F' (files), 'I' (items) and 'L' (libraries) are the only kinds
	// in [F, M): one range of keys to watch.
	return w.watch(ctx, kindFile, kindLibrary+1, func(events []kvEvent, resync bool) {
		var out []CatalogEvent
		if resync {
			out = append(out, CatalogEvent{Resync: true})
		}
		for _, e := range events {
			if ce, ok := catalogEvent(e); ok {
				out = append(out, ce)
			}
		}
		if len(out) > 0 {
			fn(out)
		}
	})
}

// catalogEvent decodes a changed key; ok is false for a kind Watch does
// not report.
func catalogEvent(e kvEvent) (CatalogEvent, bool) {
	if len(e.key) < 9 {
		return CatalogEvent{}, false
	}
	id := binary.BigEndian.Uint64(e.key[1:9])
	var ev CatalogEvent
	ok := true
	switch e.key[0] {
	case kindLibrary:
		ev.Library, ok = decodeEventRecord[Library](e.key, e.value, !e.deleted)
		if ok {
			ev.PrevLibrary, ok = decodeEventRecord[Library](e.key, e.prev, e.prev != nil)
		}
		if ok && ev.Library == nil && ev.PrevLibrary == nil {
			ok = false // deleted, and what it was is gone
		}
	case kindItem:
		ev.Item, ok = decodeEventRecord[Item](e.key, e.value, !e.deleted)
		if ok {
			ev.PrevItem, ok = decodeEventRecord[Item](e.key, e.prev, e.prev != nil)
		}
		if ok && ev.Item == nil && ev.PrevItem == nil {
			ok = false
		}
	case kindFile:
		ev.File, ok = decodeEventRecord[File](e.key, e.value, !e.deleted)
		if ok {
			ev.PrevFile, ok = decodeEventRecord[File](e.key, e.prev, e.prev != nil)
		}
		if ok && ev.File == nil && ev.PrevFile == nil {
			ev.PrevFile = &File{ItemID: id, Name: string(e.key[9:])}
		}
		for _, f := range []*File{ev.File, ev.PrevFile} {
			if f != nil {
				f.Table = id // whether it is the item's table is the reader's to see
			}
		}
	default:
		return CatalogEvent{}, false
	}
	if !ok {
		return CatalogEvent{Resync: true}, true
	}
	return ev, true
}

func decodeEventRecord[T any](key, value []byte, present bool) (*T, bool) {
	if !present {
		return nil, true
	}
	var r T
	if err := decode(key, value, &r); err != nil {
		return nil, false
	}
	return &r, true
}
