package sessionmgr

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"

	"clfs/meta"
)

// Content storage on a backing directory:
//
//	ROOT/content/ab/abcdef…   committed blob, named by its SHA-256
//	ROOT/staging/SESSION/N    bytes of an update session on their way in
//
// Staging sits on the same filesystem as content, so committing a file is
// a hard link (or rename) of its staged bytes; identical files are stored
// once. A blob lives while the catalog holds a ContentRef for it.

func contentPath(root string, sha []byte) string {
	h := hex.EncodeToString(sha)
	return filepath.Join(root, "content", h[:2], h)
}

func stagingDir(root, sessionUUID string) string {
	return filepath.Join(root, "staging", sessionUUID)
}

func fileURI(path string) string {
	return (&url.URL{Scheme: "file", Path: path}).String()
}

// prepareBacking creates the directory layout of a backing and returns its
// absolute root.
func prepareBacking(dir string) (string, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for i := 0; i < 256; i++ {
		d := filepath.Join(root, "content", fmt.Sprintf("%02x", i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", storageErr("prepare storage backing", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "staging"), 0o700); err != nil {
		return "", storageErr("prepare storage backing", err)
	}
	return root, nil
}

func (m *Manager) backingRoot(tx *meta.Tx, id uint64) (string, error) {
	b, err := tx.Backing(id)
	if err != nil {
		return "", fmt.Errorf("storage backing %d: %w", id, err)
	}
	return b.Root, nil
}

func (m *Manager) stripe(sha []byte) int { return int(sha[0]) % len(m.contentLocks) }

// lockContent takes the content locks of the given blobs in stripe order
// and returns the function that releases them.
func (m *Manager) lockContent(shas [][]byte) func() {
	var stripes []int
	for _, s := range shas {
		stripes = append(stripes, m.stripe(s))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, s := range stripes {
		m.contentLocks[s].Lock()
	}
	return func() {
		for _, s := range slices.Backward(stripes) {
			m.contentLocks[s].Unlock()
		}
	}
}

// placeContent makes the staged bytes the blob for sha, durably. It reports
// whether it created the blob (false: an identical blob was already
// stored). The caller holds the blob's content lock.
func placeContent(root, staged string, sha []byte) (bool, error) {
	dst := contentPath(root, sha)
	err := os.Link(staged, dst)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrExist):
		return false, nil
	default:
		// Filesystems without hard links: fall back to a rename; the
		// staged copy is gone then, which only matters if the commit
		// fails, and then the session goes to ERROR anyway.
		if err := os.Rename(staged, dst); err != nil {
			return false, storageErr("store content", err)
		}
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return true, storageErr("store content", err)
	}
	return true, nil
}

// blobFile is the path of a blob's file. An inline blob is written out
// there first (once: it is content-addressed, and it goes with the blob),
// so that a URI handed to a client names a file that exists.
func (m *Manager) blobFile(tx *meta.Tx, root string, k meta.ContentKey) (string, error) {
	path := contentPath(root, k.SHA256)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	b, err := tx.InlineContent(k)
	if errors.Is(err, meta.ErrNotFound) {
		return path, nil // a blob file, or fsck's business if missing
	}
	if err != nil {
		return "", err
	}
	unlock := m.lockContent([][]byte{k.SHA256})
	defer unlock()
	if err := writeFileAtomic(path, b); err != nil {
		return "", storageErr("write out inline content", err)
	}
	return path, nil
}

// writeFileAtomic writes b to path through a synced temporary file, so
// that path never names partial content.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// dropUnreferenced removes blobs whose last reference went away. It
// re-checks under the content lock, because a session may have placed and
// referenced the same bytes since. It follows a committed change that
// freed the blobs, so it runs whether or not the caller is still there
// (WithoutCancel): stopping would leak them until the next Open.
func (m *Manager) dropUnreferenced(ctx context.Context, keys []meta.ContentKey) {
	ctx = context.WithoutCancel(ctx)
	if m.shared {
		// Another node's commit may be about to reference them;
		// the leader deletes them, safely, after the grace period.
		m.freeContent(ctx, keys)
		return
	}
	for _, k := range keys {
		unlock := m.lockContent([][]byte{k.SHA256})
		var root string
		err := m.store.View(ctx, func(tx *meta.Tx) error {
			if _, err := tx.ContentRef(k); !errors.Is(err, meta.ErrNotFound) {
				return errStillReferenced
			}
			var err error
			root, err = m.backingRoot(tx, k.BackingID)
			return err
		})
		if err == nil {
			err = os.Remove(contentPath(root, k.SHA256))
			if errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		}
		unlock()
		if err != nil && !errors.Is(err, errStillReferenced) {
			m.log.Warn("remove unreferenced content", "content", k.String(), "err", err)
		}
	}
}

var errStillReferenced = errors.New("still referenced")

// removeQuietly removes a file that may already be gone; leftovers are
// swept from staging at the next start.
func removeQuietly(path string) { _ = os.Remove(path) }

// backingRoots lists the roots of all storage backings. Backings are
// only ever added, so the list is read once and then kept up to date.
func (m *Manager) backingRoots(ctx context.Context) []string {
	m.mu.Lock()
	roots := m.roots
	m.mu.Unlock()
	if roots != nil {
		return roots
	}
	var backings []meta.Backing
	if err := m.store.View(ctx, func(tx *meta.Tx) (err error) {
		backings, err = tx.Backings()
		return err
	}); err != nil {
		m.log.Warn("list storage backings", "err", err)
		return nil
	}
	roots = []string{}
	for _, b := range backings {
		roots = append(roots, b.Root)
	}
	m.mu.Lock()
	m.roots = roots
	m.mu.Unlock()
	return roots
}

// rememberBacking adds a new backing's root to backingRoots.
func (m *Manager) rememberBacking(root string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.roots != nil && !slices.Contains(m.roots, root) {
		m.roots = append(slices.Clip(m.roots), root)
	}
}
