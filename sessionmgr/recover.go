package sessionmgr

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"clfs/meta"
)

// recover brings a home back to a clean state after a process died:
//
//   - transfers that were running (TRANSFERRING, VALIDATING: client
//     uploads and server pulls alike) cannot be resumed: the file goes to
//     ERROR and the client may add it again;
//   - a session whose complete was waiting for pulls goes to ERROR: the
//     pulls are gone and the client was already told complete succeeded;
//     READY files keep their staged bytes (they were fsynced);
//   - staging that no ACTIVE session owns is removed;
//   - content blobs without a reference are removed (a commit that died
//     between placing a blob and committing the catalog, or a removal
//     that died before unlinking).
//
// ACTIVE sessions then expire normally, but not before now + timeout: the
// activity the old process saw only in memory (reads, writes, open
// handles) had moved their expiration_time past the stored one, and
// clients could not keep them alive while nobody served them.
//
// A read-only manager recovers download sessions only: they are what its
// readers use, and ending those of a stopped mount gives back their pins.
// Update sessions, staging and unreferenced blobs are left exactly as the
// last writer left them; nothing read-only reads depends on them, and the
// next read-write Open recovers them.
func (m *Manager) recover(ctx context.Context) error {
	var backings []meta.Backing
	var ups []meta.UpdateSession
	var downs []meta.DownloadSession
	var refs []meta.ContentRefEntry
	if err := m.store.View(ctx, func(tx *meta.Tx) (err error) {
		backings, err = tx.Backings()
		return err
	}); err != nil {
		return err
	}
	// Staging is listed before the sessions are read: on a shared
	// catalog another node may be creating sessions meanwhile, and a
	// directory listed here belongs to a session created before it, so
	// one the read below does not find ACTIVE is garbage.
	staging := map[string][]string{}
	if !m.readOnly {
		for _, b := range backings {
			names, err := listStaging(b.Root)
			if err != nil {
				return err
			}
			staging[b.Root] = names
		}
	}
	if err := m.store.View(ctx, func(tx *meta.Tx) (err error) {
		ups, downs, err = allSessions(tx)
		return err
	}); err != nil {
		return err
	}
	keep := map[string]bool{} // staging paths READY files still need
	active := map[string]bool{}
	mine := map[string]bool{}     // ACTIVE sessions whose staging this node sweeps
	ownEnded := map[string]bool{} // this node's sessions, whatever their state
	for i := range ups {
		s := &ups[i]
		if s.Node == m.nodeID || s.Node == 0 {
			ownEnded[s.UUID] = true // unless active: then it is in mine
		}
		if State(s.State) != StateActive || m.readOnly {
			continue
		}
		if !m.ownsSession(&s.SessionHeader) {
			active[s.UUID] = true // its node's business
			continue
		}
		if strings.HasPrefix(s.Owner, ownerMountPrefix) {
			// The mount that wrote through this session is gone; what it
			// had not committed was never acknowledged to anybody.
			if err := m.store.Update(ctx, func(tx *meta.Tx) error {
				cur, err := tx.UpdateSession(s.ID)
				if err != nil {
					return err
				}
				return m.endUpdateTx(tx, cur, opFail, "the mount that owned this session stopped")
			}); err != nil {
				return err
			}
			m.log.Info("recovery: session of a stopped mount failed", "session", s.UUID)
			continue
		}
		if s.CompletePending {
			// complete returned to the client, which now polls for
			// DONE; the pulls it waited for died with the process.
			if err := m.store.Update(ctx, func(tx *meta.Tx) error {
				cur, err := tx.UpdateSession(s.ID)
				if err != nil {
					return err
				}
				return m.endUpdateTx(tx, cur, opFail, pendingCompleteLostMessage)
			}); err != nil {
				return err
			}
			m.log.Warn("recovery: pending complete failed", "session", s.UUID)
			continue
		}
		active[s.UUID], mine[s.UUID] = true, true
		if err := m.store.Update(ctx, func(tx *meta.Tx) error {
			files, err := tx.UpdateSessionFiles(s.ID)
			if err != nil {
				return err
			}
			for j := range files {
				f := &files[j]
				switch TransferStatus(f.Status) {
				case TransferTransferring, TransferValidating:
					f.ErrorMessage = "transfer interrupted: clfs restarted; add the file again"
				case TransferReady:
					if f.Inline {
						if b, err := tx.StagedBytes(s.ID, f.Name); err == nil && int64(len(b)) == f.Size {
							continue
						}
					} else if st, err := os.Stat(f.Staging); err == nil && st.Size() == f.Size {
						keep[f.Staging] = true
						continue
					}
					f.ErrorMessage = "staged content lost: add the file again"
				default:
					continue
				}
				if err := setTransferStatus(f, TransferError); err != nil {
					return err
				}
				m.log.Warn("recovery: interrupted transfer", "session", s.UUID, "file", f.Name)
				if err := tx.PutUpdateSessionFile(f); err != nil {
					return err
				}
			}
			return m.extendTx(tx, s)
		}); err != nil {
			return err
		}
	}
	var unpinned []meta.ContentKey
	for i := range downs {
		s := &downs[i]
		if State(s.State) != StateActive || !m.ownsSession(&s.SessionHeader) {
			continue
		}
		var drop []meta.ContentKey
		if err := m.store.Update(ctx, func(tx *meta.Tx) error {
			drop = nil
			if strings.HasPrefix(s.Owner, ownerMountPrefix) {
				// Its readers died with the mount; drop its pins now
				// rather than in five minutes.
				cur, err := tx.DownloadSession(s.ID)
				if err != nil {
					return err
				}
				drop, err = m.endDownloadTx(tx, cur, opFail, "the mount that owned this session stopped")
				return err
			}
			return m.extendTx(tx, s)
		}); err != nil {
			return err
		}
		unpinned = append(unpinned, drop...)
	}
	if m.readOnly {
		// No sweep: only what the pins above held goes, as when a
		// download session ends.
		m.dropUnreferenced(ctx, unpinned)
		return nil
	}
	// Read references last: ending sessions above may have dropped some.
	if err := m.store.View(ctx, func(tx *meta.Tx) (err error) {
		refs, err = tx.ContentRefs()
		return err
	}); err != nil {
		return err
	}
	referenced := map[string]bool{}
	for _, r := range refs {
		referenced[r.Key.String()] = true
	}
	for _, b := range backings {
		if err := m.sweepStaging(b.Root, staging[b.Root], active, mine, ownEnded, keep); err != nil {
			return err
		}
		if err := m.sweepContent(ctx, b, referenced); err != nil {
			return err
		}
	}
	return nil
}

const pendingCompleteLostMessage = "clfs stopped while this session's complete was under way (waiting for server-side pulls, or committing many files); the item is unchanged"

// listStaging names the session directories under a backing's staging.
func listStaging(root string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, "staging"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, err
}

// sweepStaging removes the staging directories no ACTIVE session owns, and
// in this node's own sessions the files no READY file needs. Another
// node's ACTIVE session is left alone: its writes are in progress.
//
// On a shared catalog a directory of no session this node knows may be
// another node's in the making: a commit moves the staging of the files
// still being written to its successor session before the transaction
// that creates that session. Such a directory is removed only once it is
// older than the content grace; the leader removes the staging of a dead
// node's sessions when it fails them, and a node its own when it restarts.
func (m *Manager) sweepStaging(root string, sessions []string, active, mine, ownEnded, keep map[string]bool) error {
	dir := filepath.Join(root, "staging")
	for _, name := range sessions {
		p := filepath.Join(dir, name)
		if !active[name] && m.shared && !ownEnded[name] {
			if st, err := os.Stat(p); err == nil && time.Since(st.ModTime()) < m.grace {
				continue
			}
		}
		if !active[name] {
			m.log.Info("recovery: removing orphaned staging", "dir", p)
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			continue
		}
		if !mine[name] {
			continue
		}
		files, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		for _, f := range files {
			fp := filepath.Join(p, f.Name())
			if !keep[fp] {
				os.Remove(fp)
			}
		}
	}
	return nil
}

// sweepContent removes blob files without a reference: a commit that died
// between placing a blob and committing, or a removal that died before
// unlinking. On a shared catalog another node may be between the two
// steps of a commit right now, so the blobs go to the leader's
// freed-content index instead, where such a commit revives them.
func (m *Manager) sweepContent(ctx context.Context, b meta.Backing, referenced map[string]bool) error {
	blobs, err := listBlobs(b.Root)
	if err != nil {
		return err
	}
	var free []meta.ContentKey
	for _, sha := range blobs {
		k := meta.ContentKey{BackingID: b.ID, SHA256: sha}
		if referenced[k.String()] {
			continue
		}
		if m.shared {
			free = append(free, k)
			continue
		}
		p := contentPath(b.Root, sha)
		m.log.Info("recovery: removing unreferenced content", "path", p)
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	m.freeContent(ctx, free)
	return nil
}

// listBlobs returns the SHA-256 of every blob stored on a backing; names
// that are not blob names are ignored.
func listBlobs(root string) ([][]byte, error) {
	var out [][]byte
	fans, err := os.ReadDir(filepath.Join(root, "content"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, fan := range fans {
		entries, err := os.ReadDir(filepath.Join(root, "content", fan.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			sha, err := hex.DecodeString(e.Name())
			if err != nil || len(sha) != 32 || e.Name()[:2] != fan.Name() {
				continue
			}
			out = append(out, sha)
		}
	}
	return out, nil
}
