package sessionmgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"clfs/meta"
)

// Nodes. Every Manager is a node of its catalog: it registers a meta.Node
// under an id its home keeps (HOME/node.id), heartbeats every lease/3, and
// tags the sessions it opens with that id, because their live state
// (uploads in progress, activity not yet stored) is in its memory only.
// On a catalog several nodes share (etcd) that decides who may act on a
// session:
//
//   - a node recovers, expires and sweeps the staging of its own sessions
//     only; another node's ACTIVE session is its owner's business;
//   - one node, the leader, holds a lease on the catalog's Leader key and
//     does what must happen once for all: when a node's heartbeat is older
//     than the lease, it fails that node's ACTIVE sessions (their staging
//     goes with them; nothing the node had committed is touched) and marks
//     the node down; and it deletes blob files no reference holds, only
//     after ContentGrace, through the freed-content index (below);
//   - a node that restarts finds its sessions failed, clears its down
//     mark and removes whatever staging of its own is left.
//
// Content on a shared catalog. A node cannot tell from its own memory
// that no other node is about to reference a blob it has freed (the
// content locks are per process), so blob files are never deleted where
// they are freed: the freeing node records them in the freed-content
// index, and the leader deletes each after the grace period in three
// steps — a transaction that finds it still unreferenced and marks it
// deleting, the unlink, a transaction that drops the entry. A commit that
// takes the first reference on a blob removes its entry in the same
// transaction, or, if the entry is marked deleting, fails with
// meta.ErrContentDeleting; the commit then places its bytes again and
// retries (commitPlaced). Either transaction sees the other's key, so
// the catalog never references a blob file that is gone. The grace also
// covers readers on other nodes that opened a blob file just before its
// last reference went.
//
// Clocks: heartbeats and leases are wall-clock instants written by one
// node and read by another, so the nodes' clocks must agree to well
// within the lease (NTP does).

// DefaultNodeLease is how long a node may go without a heartbeat before
// the leader fails its sessions.
const DefaultNodeLease = 30 * time.Second

// MinNodeLease keeps heartbeats (every lease/3) from flooding the catalog.
const MinNodeLease = 3 * time.Second

// DefaultContentGrace is how long a freed blob file stays on a shared
// catalog before the leader deletes it.
const DefaultContentGrace = 10 * time.Minute

// nodeIDFile keeps a home's node id across restarts, so that a node that
// comes back knows which sessions were its own.
const nodeIDFile = "node.id"

// nodeLockFile is locked by the process that has the home open: two
// processes on one home would be one node twice.
const nodeLockFile = "node.lock"

// freedBatch bounds the freed blobs the leader looks at per round.
const freedBatch = 256

// lockHome takes the home's lock for the life of the Manager.
func lockHome(home string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(home, nodeLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock home %s: %w", home, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("home %s is in use by another clfs process (a mount or a server; use its control socket, or stop it)", home)
		}
		return nil, fmt.Errorf("lock home %s: %w", home, err)
	}
	return f, nil
}

// nodeID returns the home's node id, allocating one from the catalog the
// first time.
func nodeID(ctx context.Context, home string, st *meta.Store) (uint64, error) {
	path := filepath.Join(home, nodeIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || id == 0 {
			return 0, fmt.Errorf("node id in %s: %q is not a node id; remove the file to get a new one", path, strings.TrimSpace(string(b)))
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("node id: %w", err)
	}
	id, err := st.NextID(ctx)
	if err != nil {
		return 0, fmt.Errorf("node id: %w", err)
	}
	if err := writeFileAtomic(path, []byte(strconv.FormatUint(id, 10)+"\n")); err != nil {
		return 0, fmt.Errorf("node id: %w", err)
	}
	return id, nil
}

// buildVersion names the running build in the node record.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v = s.Value[:12]
		}
	}
	return v
}

// register writes the node's record: it is up, as of now.
func (m *Manager) register(ctx context.Context, addr string) error {
	host, _ := os.Hostname()
	now := m.now()
	m.node = meta.Node{
		ID: m.nodeID, Host: host, Home: m.home, Addr: addr, Version: buildVersion(),
		PID: os.Getpid(), Started: now, Heartbeat: now,
	}
	n := m.node
	return m.store.Update(ctx, func(tx *meta.Tx) error { return tx.PutNode(&n) })
}

// unregister removes the node's record at a clean stop if it holds no
// ACTIVE session. One it still holds (an API client's, left to expire)
// keeps the record, so that on a shared catalog the leader fails them
// once the heartbeat lapses, unless this node comes back first.
func (m *Manager) unregister(ctx context.Context) {
	// A read of every session, then a small change: a read-write
	// transaction that read them all would be too large for etcd, and
	// this node opens no session while it closes.
	var active map[uint64]activeSessions
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		ups, downs, err := allSessions(tx)
		active = activeByNode(ups, downs)
		return err
	})
	if err == nil && active[m.nodeID] == (activeSessions{}) {
		err = m.store.Update(ctx, func(tx *meta.Tx) error { return tx.DeleteNode(m.nodeID) })
	}
	if err != nil {
		m.log.Warn("unregister node", "node", m.nodeID, "err", err)
	}
}

// ownsSession reports whether this node holds a session's live state and
// so decides its fate. On a catalog nobody shares every session is ours;
// sessions of releases before nodes (Node 0) belong to whoever recovers
// them first.
func (m *Manager) ownsSession(h *meta.SessionHeader) bool {
	return !m.shared || h.Node == 0 || h.Node == m.nodeID
}

// NodeTick heartbeats and, on a shared catalog, does the leader's work if
// this node holds or can take the lease. The node's goroutine runs it
// every lease/3; tests call it after moving their clock.
func (m *Manager) NodeTick(ctx context.Context) error {
	if err := m.heartbeat(ctx); err != nil {
		return err
	}
	if !m.shared || m.readOnly {
		return nil
	}
	leader, err := m.claimLeader(ctx)
	if err != nil || !leader {
		return err
	}
	// The sweep gets a sixth of the lease per tick, so that the next
	// heartbeat is never late for it.
	return errors.Join(m.failLapsedNodes(ctx), m.deleteFreedContent(ctx, m.now()-int64(m.grace)), m.sweepAWhile(ctx, m.lease/6))
}

func (m *Manager) heartbeat(ctx context.Context) error {
	now := m.now()
	return m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		n, err := tx.Node(m.nodeID)
		if errors.Is(err, meta.ErrNotFound) {
			// Removed by hand or by a catalog reset: register again.
			cp := m.node
			n, err = &cp, nil
		}
		if err != nil {
			return err
		}
		n.Heartbeat, n.Down = now, 0
		return tx.PutNode(n)
	})
}

// claimLeader takes or renews the leader's lease and reports whether this
// node holds it.
func (m *Manager) claimLeader(ctx context.Context) (bool, error) {
	now := m.now()
	leader := false
	err := m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		l, err := tx.Leader()
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		leader = l == nil || l.Node == m.nodeID || l.Until < now
		if !leader {
			return nil
		}
		return tx.PutLeader(&meta.Leader{Node: m.nodeID, Until: now + int64(m.lease)})
	})
	return leader && err == nil, err
}

// failLapsedNodes fails the ACTIVE sessions of every node whose heartbeat
// is older than the lease, and marks the node down.
func (m *Manager) failLapsedNodes(ctx context.Context) error {
	now := m.now()
	var nodes []meta.Node
	if err := m.store.View(ctx, func(tx *meta.Tx) (err error) {
		nodes, err = tx.Nodes()
		return err
	}); err != nil {
		return err
	}
	var errs []error
	for _, n := range nodes {
		switch {
		case n.ID == m.nodeID || n.Heartbeat >= now-int64(m.lease):
		case n.Down == 0:
			errs = append(errs, m.failNode(ctx, n, now))
		case n.Down < now-int64(nodeForget):
			errs = append(errs, m.forgetNode(ctx, n.ID, now))
		}
	}
	return errors.Join(errs...)
}

// nodeForget is how long `clfs status` keeps showing a node that went
// down and did not come back (a host retired, a CLI killed mid-command):
// long enough for an operator to see it, then the record goes.
const nodeForget = 24 * time.Hour

func (m *Manager) forgetNode(ctx context.Context, id uint64, now int64) error {
	return m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		n, err := tx.Node(id)
		if errors.Is(err, meta.ErrNotFound) {
			return nil
		}
		if err != nil || n.Down == 0 || n.Down >= now-int64(nodeForget) {
			return err // came back meanwhile
		}
		m.log.Info("forgetting a node down for a day", "node", id, "host", n.Host, "home", n.Home)
		return tx.DeleteNode(id)
	})
}

func (m *Manager) failNode(ctx context.Context, n meta.Node, now int64) error {
	lapsed := time.Duration(now - n.Heartbeat).Round(time.Second)
	msg := fmt.Sprintf("node %d (%s, %s) stopped: no heartbeat for %s", n.ID, n.Host, n.Home, lapsed)
	m.log.Warn("node lease lapsed: failing its sessions", "node", n.ID, "host", n.Host, "home", n.Home, "silent", lapsed)
	var ups []meta.UpdateSession
	var downs []meta.DownloadSession
	if err := m.store.View(ctx, func(tx *meta.Tx) (err error) {
		ups, downs, err = allSessions(tx)
		return err
	}); err != nil {
		return err
	}
	var ended []endedSession
	var drop []meta.ContentKey
	for i := range ups {
		s := &ups[i]
		if s.Node != n.ID || State(s.State) != StateActive {
			continue
		}
		failed := false
		err := m.store.Update(ctx, func(tx *meta.Tx) error {
			cur, err := tx.UpdateSession(s.ID)
			if err != nil || cur.Node != n.ID || State(cur.State) != StateActive {
				failed = false
				return err
			}
			failed = true
			return m.endUpdateTx(tx, cur, opFail, msg)
		})
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		if failed && err == nil {
			ended = append(ended, endedSession{s.ID, s.UUID})
		}
	}
	for i := range downs {
		s := &downs[i]
		if s.Node != n.ID || State(s.State) != StateActive {
			continue
		}
		var d []meta.ContentKey
		err := m.store.Update(ctx, func(tx *meta.Tx) error {
			cur, err := tx.DownloadSession(s.ID)
			if err != nil || cur.Node != n.ID || State(cur.State) != StateActive {
				d = nil
				return err
			}
			d, err = m.endDownloadTx(tx, cur, opFail, msg)
			return err
		})
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		if err == nil {
			drop = append(drop, d...)
		}
	}
	m.afterEnd(ctx, ended)
	m.dropUnreferenced(ctx, drop)
	return m.store.Update(ctx, func(tx *meta.Tx) error {
		cur, err := tx.Node(n.ID)
		if errors.Is(err, meta.ErrNotFound) || (err == nil && cur.Heartbeat >= now-int64(m.lease)) {
			return nil // gone, or back: it recovers its own
		}
		if err != nil {
			return err
		}
		cur.Down = now
		return tx.PutNode(cur)
	})
}

// freeContent records blobs that lost their last reference for the
// leader to delete after the grace period (shared catalogs; see above).
// Blobs referenced again meanwhile are left alone.
func (m *Manager) freeContent(ctx context.Context, keys []meta.ContentKey) {
	if len(keys) == 0 {
		return
	}
	now := m.now()
	var errs []error
	for batch := range slices.Chunk(keys, freeBatch) {
		errs = append(errs, m.freeContentBatch(ctx, batch, now))
	}
	if err := errors.Join(errs...); err != nil {
		m.log.Warn("record freed content", "blobs", len(keys), "err", err)
	}
}

// freeBatch bounds the blobs recorded per transaction: each reads two
// keys, and etcd takes 128 per transaction.
const freeBatch = 48

func (m *Manager) freeContentBatch(ctx context.Context, keys []meta.ContentKey, now int64) error {
	return m.store.Update(context.WithoutCancel(ctx), func(tx *meta.Tx) error {
		for _, k := range keys {
			if _, err := tx.ContentRef(k); !errors.Is(err, meta.ErrNotFound) {
				if err != nil {
					return err
				}
				continue
			}
			if err := tx.FreeContent(k, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// deleteFreedContent is the leader's deletion of blob files freed before
// cutoff (Unix ns).
func (m *Manager) deleteFreedContent(ctx context.Context, cutoff int64) error {
	var freed []meta.FreedContentEntry
	if err := m.store.View(ctx, func(tx *meta.Tx) (err error) {
		freed, err = tx.FreedContents(freedBatch)
		return err
	}); err != nil {
		return err
	}
	for _, e := range freed {
		if e.Since > cutoff && !e.Deleting {
			continue
		}
		var root string
		deleting := false
		err := m.store.Update(ctx, func(tx *meta.Tx) error {
			deleting = false
			f, err := tx.FreedContentOf(e.Key)
			if errors.Is(err, meta.ErrNotFound) {
				return nil // revived and dropped by a commit
			}
			if err != nil {
				return err
			}
			if _, err := tx.ContentRef(e.Key); err == nil {
				return tx.DeleteFreedContent(e.Key) // referenced again
			} else if !errors.Is(err, meta.ErrNotFound) {
				return err
			}
			if root, err = m.backingRoot(tx, e.Key.BackingID); err != nil {
				return err
			}
			deleting = true
			if f.Deleting {
				return nil // a leader before us stopped half-way
			}
			f.Deleting = true
			return tx.PutFreedContent(e.Key, f)
		})
		if err != nil || !deleting {
			if err != nil {
				return err
			}
			continue
		}
		if err := os.Remove(contentPath(root, e.Key.SHA256)); err != nil && !errors.Is(err, os.ErrNotExist) {
			// Left marked: no commit can reference it, and the next
			// round tries again.
			m.log.Warn("delete freed content", "content", e.Key.String(), "err", err)
			continue
		}
		if err := m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error { return tx.DeleteFreedContent(e.Key) }); err != nil {
			return err
		}
	}
	return nil
}

// Nodes lists the nodes registered in the catalog, with the number of
// ACTIVE sessions each holds.
func (m *Manager) Nodes(ctx context.Context) ([]NodeInfo, error) {
	var out []NodeInfo
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		out = nil
		nodes, err := tx.Nodes()
		if err != nil {
			return err
		}
		l, err := tx.Leader()
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		ups, downs, err := allSessions(tx)
		if err != nil {
			return err
		}
		active := activeByNode(ups, downs)
		now := m.now()
		for _, n := range nodes {
			st := "up"
			switch {
			case n.Down != 0:
				st = "down"
			case n.Heartbeat < now-int64(m.lease):
				st = "silent"
			}
			out = append(out, NodeInfo{
				ID: n.ID, Host: n.Host, Home: n.Home, Addr: n.Addr, Version: n.Version, PID: n.PID,
				Started: nsTime(n.Started), Heartbeat: nsTime(n.Heartbeat), State: st,
				Leader:         l != nil && l.Node == n.ID && l.Until >= now,
				Self:           n.ID == m.nodeID,
				UpdateSessions: active[n.ID].updates, DownloadSessions: active[n.ID].downloads,
			})
		}
		return nil
	})
	return out, err
}

// NodeInfo is one node as `clfs status` shows it.
type NodeInfo struct {
	ID        uint64    `json:"id"`
	Host      string    `json:"host"`
	Home      string    `json:"home"`
	Addr      string    `json:"addr,omitempty"`
	Version   string    `json:"version"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	// State is up, silent (no heartbeat for a lease; its sessions fail
	// at the leader's next round) or down (its sessions were failed).
	State            string `json:"state"`
	Leader           bool   `json:"leader"`
	Self             bool   `json:"self"`
	UpdateSessions   int    `json:"update_sessions"`
	DownloadSessions int    `json:"download_sessions"`
}

// DropCatalog deletes every key of the catalog url names, which no node
// may have open: for the tests and benchmarks that make a catalog per
// run on a shared cluster.
func DropCatalog(ctx context.Context, url string) error {
	st, err := meta.Open(ctx, meta.Options{URL: url})
	if err != nil {
		return err
	}
	return errors.Join(st.DropAll(ctx), st.Close())
}

// RedactCatalogURL is a catalog URL fit to print: no password.
func RedactCatalogURL(url string) string { return meta.Redact(url) }

// allSessions reads every update and download session the catalog keeps.
func allSessions(tx *meta.Tx) ([]meta.UpdateSession, []meta.DownloadSession, error) {
	ups, err := tx.UpdateSessions()
	if err != nil {
		return nil, nil, err
	}
	downs, err := tx.DownloadSessions()
	return ups, downs, err
}

// activeSessions counts a node's ACTIVE sessions.
type activeSessions struct{ updates, downloads int }

func activeByNode(ups []meta.UpdateSession, downs []meta.DownloadSession) map[uint64]activeSessions {
	active := map[uint64]activeSessions{}
	for _, s := range ups {
		if State(s.State) == StateActive {
			c := active[s.Node]
			c.updates++
			active[s.Node] = c
		}
	}
	for _, s := range downs {
		if State(s.State) == StateActive {
			c := active[s.Node]
			c.downloads++
			active[s.Node] = c
		}
	}
	return active
}
