package sessionmgr

import (
	"context"
	"errors"
	"strconv"
	"syscall"
	"time"

	"clfs/meta"
)

// DeleteItemIfEmpty deletes an item that has no files (rmdir). The check
// and the delete are one catalog transaction: a file committed meanwhile
// (a cp racing the rmdir) either makes it fail with ErrNotEmpty or fails
// itself, its item gone; it is never deleted with the item after its
// commit returned.
//
// Empty is what the mount lists: no committed file and no new name of the
// mount's waiting for its first commit. A client's (the API's) update
// session does not count: it goes to ERROR with the item, as for
// DeleteItem.
func (m *Manager) DeleteItemIfEmpty(ctx context.Context, id string) error {
	if err := m.refuseIfReadOnly("delete library item"); err != nil {
		return err
	}
	lib, item := m.namesOf(ctx, "", id)
	var drop []meta.ContentKey
	var ended []endedSession
	err := m.updateNamespace(ctx, func(tx *meta.Tx) error {
		drop, ended = nil, nil
		it, err := m.itemRec(tx, id)
		if err != nil {
			return err
		}
		if err := m.checkItemEmptyTx(tx, it); err != nil {
			return err
		}
		drop, ended, _, err = m.deleteItemTx(tx, it) // empty: never large
		return err
	})
	if err != nil {
		return err
	}
	m.afterEnd(ctx, ended)
	m.freeBlobs(ctx, drop)
	m.notify(Change{Library: lib, Item: item, Gone: true})
	return nil
}

// checkItemEmptyTx fails with ErrNotEmpty unless the item shows no name in
// the mount: no committed file, no new name of the mount's waiting for its
// first commit. It reads the item's record and its session lock, which
// every commit and every new session write, so a commit running meanwhile
// conflicts with the transaction that deletes the item.
func (m *Manager) checkItemEmptyTx(tx *meta.Tx, it *meta.Item) error {
	// The mount's drafts first (see ItemEntries), which also list new
	// names whose session ended under them.
	n := len(m.pendingNames(it.UUID))
	if n == 0 {
		var err error
		if n, err = m.itemFilesTx(tx, it); err != nil {
			return err
		}
	}
	if n > 0 {
		return wrapf(KindNotAllowedInCurrentState, ErrNotEmpty, "item %s has %d files", itemLabel(tx, it), n)
	}
	return nil
}

// itemFilesTx counts an item's committed files and the new names in the
// mount's ACTIVE update session.
func (m *Manager) itemFilesTx(tx *meta.Tx, it *meta.Item) (int, error) {
	files, err := tx.Files(it)
	if err != nil {
		return 0, err
	}
	n := len(files)
	sid, err := tx.ActiveUpdate(it.ID)
	if errors.Is(err, meta.ErrNotFound) {
		return n, nil
	}
	if err != nil {
		return 0, err
	}
	s, err := tx.UpdateSession(sid)
	if err != nil {
		return 0, err
	}
	if s.Owner != m.owner {
		return n, nil
	}
	changes, err := tx.UpdateSessionFiles(s.ID)
	if err != nil {
		return 0, err
	}
	for _, c := range changes {
		if c.Removed {
			continue
		}
		if _, err := tx.File(it, c.Name); errors.Is(err, meta.ErrNotFound) {
			n++
		} else if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// DeleteLibraryIfEmpty deletes a library that has no items (rmdir), in one
// catalog transaction with the check: an item created meanwhile either
// makes it fail with ErrNotEmpty or fails itself (NotFound).
func (m *Manager) DeleteLibraryIfEmpty(ctx context.Context, id string) error {
	if err := m.refuseIfReadOnly("delete library"); err != nil {
		return err
	}
	var name string
	err := m.updateNamespace(ctx, func(tx *meta.Tx) error {
		lib, err := m.libraryRec(tx, id)
		if err != nil {
			return err
		}
		name = lib.Name
		return deleteLibraryIfEmptyTx(tx, lib)
	})
	if err != nil {
		return err
	}
	m.notify(Change{Library: name, Gone: true})
	return nil
}

// deleteLibraryIfEmptyTx deletes a library that has no items, else fails
// with ErrNotEmpty. CreateItem writes the library's record, which this
// reads: one of the two transactions conflicts, and its retry sees the
// other.
func deleteLibraryIfEmptyTx(tx *meta.Tx, lib *meta.Library) error {
	items, err := tx.ItemIDs(lib.ID)
	if err != nil {
		return err
	}
	if len(items) > 0 {
		return wrapf(KindNotAllowedInCurrentState, ErrNotEmpty, "library %q has %d items", lib.Name, len(items))
	}
	return tx.DeleteLibrary(lib.ID) // and its name and API id
}

// StorageStats describes the default storage backing, for statfs(2).
type StorageStats struct {
	BlockSize  uint64
	Blocks     uint64
	BlocksFree uint64
	BlocksUser uint64
	Files      uint64
	FilesFree  uint64
}

// StorageStats reports the space of the home's storage backing.
func (m *Manager) StorageStats(ctx context.Context) (*StorageStats, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(m.defaultStorage, &st); err != nil {
		return nil, storageErr("statfs", err)
	}
	var files int64
	_ = m.store.View(ctx, func(tx *meta.Tx) (err error) {
		files, err = tx.CountFiles() // not AllFiles: statfs comes with every find and df
		return err
	})
	return &StorageStats{
		BlockSize: uint64(st.Bsize), Blocks: st.Blocks, BlocksFree: st.Bfree, BlocksUser: st.Bavail,
		Files: uint64(files) + st.Ffree, FilesFree: st.Ffree,
	}, nil
}

// readSession is the download session the mount reads an item through,
// shared by every read handle opened while the item's content version
// stays the same.
type readSession struct {
	id             string
	contentVersion string
	readers        int // GUARDED_BY(Manager.mu)
	stale          bool
	// idleSince is when the last reader closed; zero while one reads.
	idleSince time.Time // GUARDED_BY(Manager.mu)
}

// readLinger is how long a read session outlives its last reader: long
// enough that tar, cp -r or cat * opening one file after another reuse it
// (a session per open made reading 1,000 small files a third slower),
// short enough that `clfs session ls` is soon clean.
const readLinger = 500 * time.Millisecond

// maxPinAttempts bounds how often an open tries again when the item's
// content version moved between reading it and pinning the file: a writer
// renaming over a name in a loop (rsync, os.replace) moves it every few
// milliseconds, and four tries were not enough under load (EIO).
const maxPinAttempts = 64

// OpenFileReader opens a committed file for reading through a download
// session pinned to the item's current content version.
func (m *Manager) OpenFileReader(ctx context.Context, itemID, name string) (*FileReader, error) {
	for attempt := 0; ; attempt++ {
		it, err := m.GetItem(ctx, itemID)
		if err != nil {
			return nil, err
		}
		rs, err := m.readSessionFor(ctx, it)
		if err != nil {
			return nil, err
		}
		r, err := m.OpenDownload(ctx, rs.id, name)
		if err == nil {
			return &FileReader{DownloadReader: r, m: m, itemID: itemID, rs: rs}, nil
		}
		m.mu.Lock()
		if m.readers[itemID] == rs {
			delete(m.readers, itemID)
		}
		rs.stale = true
		m.mu.Unlock()
		m.releaseReadSession(ctx, itemID, rs)
		switch {
		case KindOf(err) == KindInvalidArgument:
			return nil, errorf(KindNotFound, "file %q not found", name)
		case errors.Is(err, ErrNotAllowedInCurrentState) && attempt < maxPinAttempts:
			// Canceled or expired under us, or the item changed
			// between reading its version and pinning the file:
			// try again, fresh.
		default:
			return nil, err
		}
	}
}

func (m *Manager) readSessionFor(ctx context.Context, it *Item) (*readSession, error) {
	m.mu.Lock()
	rs := m.readers[it.ID]
	if rs != nil && rs.contentVersion == it.ContentVersion {
		rs.readers++
		rs.idleSince = time.Time{}
		m.mu.Unlock()
		return rs, nil
	}
	m.mu.Unlock()
	id, err := m.createDownloadSessionPinning(ctx, DownloadSessionCreateSpec{LibraryItemID: it.ID}, "", m.owner, true)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	var drop string // the replaced session, if nobody reads through it
	if old := m.readers[it.ID]; old != nil {
		old.stale = true
		if old.readers == 0 {
			drop = old.id
		}
	}
	rs = &readSession{id: id, contentVersion: it.ContentVersion, readers: 1}
	m.readers[it.ID] = rs
	m.mu.Unlock()
	// Deleted here, not on a goroutine of its own: one that outlived
	// Close panicked on the closed catalog ("DB Closed").
	if drop != "" {
		if err := m.DeleteDownloadSession(context.WithoutCancel(ctx), drop); err != nil && !errors.Is(err, ErrNotFound) {
			m.log.Warn("delete read session", "session", drop, "err", err)
		}
	}
	return rs, nil
}

// releaseReadSession lets go of one reader of a read session. The last one
// ends a session a newer content version replaced at once, and any other
// once it has been idle for readLinger (endIdleReadSessions): `clfs session
// ls` shows the mount's download sessions only while something reads
// through them.
func (m *Manager) releaseReadSession(ctx context.Context, itemID string, rs *readSession) {
	m.mu.Lock()
	rs.readers--
	done := rs.readers == 0 && rs.stale
	idle := rs.readers == 0 && !rs.stale
	if idle {
		rs.idleSince = m.clock.Now()
	}
	m.mu.Unlock()
	if idle {
		select {
		case m.readIdle <- struct{}{}:
		default:
		}
	}
	if done {
		if err := m.DeleteDownloadSession(ctx, rs.id); err != nil && !errors.Is(err, ErrNotFound) {
			m.log.Warn("delete read session", "session", rs.id, "err", err)
		}
	}
}

// runReadSessionSweeper ends idle read sessions, waking only while some
// are idle.
func (m *Manager) runReadSessionSweeper() {
	defer m.reaper.Done()
	for {
		select {
		case <-m.stop:
			return
		case <-m.readIdle:
		}
		for m.endIdleReadSessions(readLinger) > 0 {
			select {
			case <-m.stop:
				return
			case <-time.After(readLinger / 2):
			}
		}
	}
}

// endIdleReadSessions deletes the read sessions idle for at least linger
// and returns how many others are idle still.
func (m *Manager) endIdleReadSessions(linger time.Duration) (waiting int) {
	now := m.clock.Now()
	var end []string
	m.mu.Lock()
	for itemID, rs := range m.readers {
		if rs.readers > 0 || rs.idleSince.IsZero() {
			continue
		}
		if now.Sub(rs.idleSince) < linger {
			waiting++
			continue
		}
		rs.stale = true
		delete(m.readers, itemID)
		end = append(end, rs.id)
	}
	m.mu.Unlock()
	for _, id := range end {
		// No caller: the sweeper's goroutine, or Close.
		if err := m.DeleteDownloadSession(context.Background(), id); err != nil && !errors.Is(err, ErrNotFound) {
			m.log.Warn("delete read session", "session", id, "err", err)
		}
	}
	return waiting
}

// FileReader is a DownloadReader of the mount's shared read session.
type FileReader struct {
	*DownloadReader
	m      *Manager
	itemID string
	rs     *readSession
}

// Close closes the reader and, when it was the last one of a session that
// a newer content version replaced, deletes the session.
func (r *FileReader) Close() error {
	err := r.DownloadReader.Close()
	// Close is an io.Closer: no caller's context to stop it.
	r.m.releaseReadSession(context.Background(), r.itemID, r.rs)
	return err
}

// FileXattr answers the mount's user.clfs.* extended attributes of a
// committed file: sha256, version, id, content_version, storage_uri.
func (m *Manager) FileXattr(ctx context.Context, itemID, name, attr string) ([]byte, error) {
	f, err := m.GetFile(ctx, itemID, name)
	if err != nil {
		return nil, err
	}
	switch attr {
	case "sha256":
		return []byte(f.ChecksumInfo.Checksum), nil
	case "version":
		return []byte(f.Version), nil
	case "id":
		return []byte(strconv.FormatUint(f.Posix.Ino, 10)), nil
	case "content_version":
		it, err := m.GetItem(ctx, itemID)
		if err != nil {
			return nil, err
		}
		return []byte(it.ContentVersion), nil
	case "storage_uri":
		st, err := m.GetStorage(ctx, itemID, name)
		if err != nil {
			return nil, err
		}
		return []byte(st[0].StorageURIs[0]), nil
	}
	return nil, errorf(KindInvalidArgument, "no attribute %q", attr)
}
