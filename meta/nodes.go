package meta

import (
	"errors"
	"fmt"
)

// Several daemons may share one catalog (an etcd cluster). Each is a Node
// with a heartbeat; one of them, the leader, holds a lease on the Leader
// key and does the cleanup that must not run twice or race: failing the
// sessions of nodes that stopped heartbeating, and deleting blob files no
// reference holds any more (FreedContent), after a grace period. The
// rules are sessionmgr's (node.go); here are the records and their keys.

// Node is one daemon that has the catalog open.
type Node struct {
	ID        uint64 `json:"id"`
	Host      string `json:"host"`
	Home      string `json:"home"`
	Addr      string `json:"addr,omitempty"` // mountpoint or listen address, if any
	Version   string `json:"version"`
	PID       int    `json:"pid"`
	Started   int64  `json:"started"`   // Unix ns
	Heartbeat int64  `json:"heartbeat"` // Unix ns of the last one
	// Down is set by the leader once the node's lease lapsed and its
	// sessions were failed (Unix ns); the node clears it when it
	// comes back.
	Down int64 `json:"down,omitempty"`
}

// Leader is who cleans up for every node, and until when it may.
type Leader struct {
	Node  uint64 `json:"node"`
	Until int64  `json:"until"` // Unix ns
}

// FreedContent is a blob file that lost its last reference at Since
// (Unix ns). Deleting marks the leader's deletion under way: no new
// reference may be taken on the blob until the entry is gone
// (ErrContentDeleting), so a commit elsewhere never references a file
// that is about to disappear.
type FreedContent struct {
	Since    int64 `json:"since"`
	Deleting bool  `json:"deleting,omitempty"`
}

// FreedContentEntry is one row of the freed-content index.
type FreedContentEntry struct {
	Key ContentKey
	FreedContent
}

// ErrContentDeleting: a blob file being deleted by the leader cannot be
// referenced until the deletion is done; place the bytes again and retry.
var ErrContentDeleting = errors.New("meta: content is being deleted; place it again")

// Shared reports whether other processes may have the catalog open at
// the same time (etcd: yes; Badger locks its directory).
func (s *Store) Shared() bool { return s.engine.shared() }

func (tx *Tx) Node(id uint64) (*Node, error) {
	var n Node
	if err := tx.get(nodeKey(id), &n); err != nil {
		return nil, err
	}
	return &n, nil
}

func (tx *Tx) PutNode(n *Node) error {
	if n.ID == 0 {
		return fmt.Errorf("%w: node without an id", ErrCorrupt)
	}
	return tx.put(nodeKey(n.ID), n)
}

func (tx *Tx) DeleteNode(id uint64) error { return tx.del(nodeKey(id)) }

// Nodes lists every registered node, by id.
func (tx *Tx) Nodes() ([]Node, error) {
	var out []Node
	err := tx.scan(nodePrefix(), false, func(k, v []byte) error {
		var n Node
		if err := decode(k, v, &n); err != nil {
			return err
		}
		out = append(out, n)
		return nil
	})
	return out, err
}

// Leader returns the leader's lease, or ErrNotFound if none was ever
// taken.
func (tx *Tx) Leader() (*Leader, error) {
	var l Leader
	if err := tx.get(leaderKey(), &l); err != nil {
		return nil, err
	}
	return &l, nil
}

func (tx *Tx) PutLeader(l *Leader) error { return tx.put(leaderKey(), l) }

// FreeContent records that a blob file lost its last reference at now,
// unless it is recorded already (the earlier instant stands).
func (tx *Tx) FreeContent(k ContentKey, now int64) error {
	key := freedContentKey(k.BackingID, k.SHA256)
	if _, err := tx.getRaw(key); err == nil || !errors.Is(err, ErrNotFound) {
		return err
	}
	return tx.put(key, &FreedContent{Since: now})
}

// FreedContentOf returns a blob's entry in the freed-content index, or
// ErrNotFound.
func (tx *Tx) FreedContentOf(k ContentKey) (*FreedContent, error) {
	var f FreedContent
	if err := tx.get(freedContentKey(k.BackingID, k.SHA256), &f); err != nil {
		return nil, err
	}
	return &f, nil
}

func (tx *Tx) PutFreedContent(k ContentKey, f *FreedContent) error {
	return tx.put(freedContentKey(k.BackingID, k.SHA256), f)
}

func (tx *Tx) DeleteFreedContent(k ContentKey) error {
	return tx.del(freedContentKey(k.BackingID, k.SHA256))
}

// FreedContents lists the freed-content index, at most limit entries
// (0: all).
func (tx *Tx) FreedContents(limit int) ([]FreedContentEntry, error) {
	var out []FreedContentEntry
	err := tx.scan(freedContentPrefix(), false, func(k, v []byte) error {
		b, sha, ok := parseFreedContentKey(k)
		if !ok {
			return fmt.Errorf("%w: freed content key %q", ErrCorrupt, k)
		}
		e := FreedContentEntry{Key: ContentKey{BackingID: b, SHA256: sha}}
		if err := decode(k, v, &e.FreedContent); err != nil {
			return err
		}
		out = append(out, e)
		if limit > 0 && len(out) >= limit {
			return errStop
		}
		return nil
	})
	return out, err
}

// revive is what taking the first reference on a blob does to its
// freed-content entry: removes it (the blob is wanted again), or refuses
// while the leader is deleting the file.
func (tx *Tx) revive(k ContentKey) error {
	f, err := tx.FreedContentOf(k)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return err
	case f.Deleting:
		return ErrContentDeleting
	}
	return tx.DeleteFreedContent(k)
}
