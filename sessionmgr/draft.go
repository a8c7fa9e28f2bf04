package sessionmgr

import (
	"context"
	"errors"
	"io"
	"sync"

	"clfs/meta"
)

// The mount's side of update sessions.
//
// A Draft is the state of one file node of the mount that is not committed
// yet: a new name, staged bytes, the mode and mtime set on it. The mount
// keeps one per file node and turns POSIX calls into Draft calls; the
// rules live here:
//
//   - a change (write, truncate, a new name) joins the item's ACTIVE update
//     session or creates one; a session that another client (the API)
//     holds makes the change fail with ResourceBusy;
//   - Commit completes that session with this file's change only; changes
//     of other files of the item move to a successor session;
//   - a change to an existing file that does not start by truncating it
//     starts from a copy of the committed content;
//   - until its commit, nobody but the draft's own handles sees the change:
//     entries and readers show the last committed version, and a new name
//     shows as an empty file; an O_APPEND write goes to the pending end,
//     whatever size the kernel believes (Append);
//   - times follow POSIX: a write, a truncate or an fallocate moves mtime
//     and ctime to the time of the change, setattr moves ctime, atime
//     moves only by setattr; the commit keeps them;
//   - a file unlinked or renamed over while handles are open on it lives
//     on through them (orphan.go), and nothing is committed under the
//     removed name.
//
// Draft.mu comes first in the package's lock order (doc.go).

// Draft is the pending state of one file node of the mount.
type Draft struct {
	m    *Manager
	item *mountItem
	ino  uint64

	mu          sync.Mutex
	name        string      // GUARDED_BY(mu)
	committed   bool        // GUARDED_BY(mu); the name has a committed file
	pending     bool        // GUARDED_BY(mu); a change awaits commit
	dataWritten bool        // GUARDED_BY(mu); bytes written since the last commit
	staged      *StagedFile // GUARDED_BY(mu)
	attr        meta.Attr   // GUARDED_BY(mu); attributes of the pending version
	// opens counts the node's handles. It is guarded by Manager.mu, not
	// mu, so that finding a draft in its item and opening it is one step
	// (OpenDraft), which forgetIfIdle cannot come between.
	opens   int  // GUARDED_BY(Manager.mu)
	removed bool // GUARDED_BY(mu); unlinked or renamed over
	// broken is the error of a write or truncate that failed: the staged
	// bytes are not what the writer meant, so the commit must fail too.
	broken error // GUARDED_BY(mu)

	// base reads the committed version for the writer's own reads while
	// nothing is staged. A commit retires it, so that a writer reads what
	// it wrote; a retired reader may still be mid-read, so it is closed
	// with the node's last handle.
	base    *FileReader   // GUARDED_BY(mu)
	retired []*FileReader // GUARDED_BY(mu)
	// orphan holds the bytes of a file whose name is gone while handles
	// are still open on it (removed is then true): POSIX keeps an
	// unlinked file usable until its last close, and nothing is committed
	// under the removed name.
	orphan *orphanFile // GUARDED_BY(mu)
}

// OpenDraft opens a handle on the draft of a file node: the live one of
// that name, or a new one over the committed file. The caller Closes it.
func (m *Manager) OpenDraft(ctx context.Context, itemID, name string) (*Draft, error) {
	if err := m.refuseIfReadOnly("open file for writing"); err != nil {
		return nil, err
	}
	mi := m.mountItem(itemID)
	for {
		if d := m.draftByName(mi, name); d != nil {
			m.mu.Lock()
			live := mi.drafts[d.ino] == d
			if live {
				d.opens++
			}
			m.mu.Unlock()
			if live {
				return d, nil
			}
			continue // forgotten meanwhile: look again
		}
		f, err := m.GetFile(ctx, itemID, name)
		if err != nil {
			return nil, err
		}
		d := &Draft{m: m, item: mi, ino: f.Posix.Ino, name: name, committed: true}
		m.mu.Lock()
		if other := mi.drafts[d.ino]; other != nil {
			other.opens++
			m.mu.Unlock()
			return other, nil
		}
		d.opens = 1
		mi.drafts[d.ino] = d
		m.mu.Unlock()
		return d, nil
	}
}

// CreateFile makes a new name in an item: visible at once (as an empty
// file) and a change of the item's update session until its commit. The
// draft comes with a handle open on it, which the caller Closes.
func (m *Manager) CreateFile(ctx context.Context, itemID, name string, p Posix) (*Draft, error) {
	if err := m.refuseIfReadOnly("create file"); err != nil {
		return nil, err
	}
	if err := ValidateName("file", name); err != nil {
		return nil, err
	}
	mi := m.mountItem(itemID)
	if m.draftByName(mi, name) != nil {
		return nil, errorf(KindAlreadyExists, "file %q already exists", name)
	}
	// The catalog is checked for the name in beginChange's transaction.
	ino, err := m.store.NextID(ctx)
	if err != nil {
		return nil, err
	}
	now := m.now()
	d := &Draft{m: m, item: mi, ino: ino, name: name, attr: attrFromPosix(&p, now, 0o644)}
	if d.attr.Atime == nil {
		d.attr.Atime = &now
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.beginChange(ctx, false); err != nil {
		return nil, err
	}
	m.mu.Lock()
	d.opens = 1
	mi.drafts[ino] = d
	m.mu.Unlock()
	return d, nil
}

// Ino is the node's stable inode number (the file's catalog ID).
func (d *Draft) Ino() uint64 { return d.ino }

// Name is the node's current name in its item.
func (d *Draft) Name() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.name
}

// beginChange makes sure the draft has staged bytes in the item's session.
// fromCommitted seeds them with the committed content. Caller holds d.mu.
func (d *Draft) beginChange(ctx context.Context, fromCommitted bool) error {
	if d.staged != nil {
		// usable reads fields a commit of another file of the item
		// moves to its successor session (takeLive), under sf.mu.
		d.staged.mu.Lock()
		err := d.staged.usable()
		d.staged.mu.Unlock()
		if err == nil {
			return nil
		}
		// The session ended under a change in progress (cancelled,
		// failed or expired): what was written is gone, so the change
		// cannot go on from here, nor be committed.
		if d.broken == nil {
			d.broken = err
		}
		return err
	}
	mi := d.item
	mi.mu.Lock()
	defer mi.mu.Unlock()
	var sf *StagedFile
	var committed *meta.File
	err := d.m.waitForPeerMount(ctx, func() (err error) {
		sf, committed, err = d.m.beginUpload(ctx, mi, d.name, !d.committed, fromCommitted && d.committed)
		return err
	})
	if err != nil {
		return err
	}
	if !d.pending && committed != nil {
		d.attr = committed.Attr
		if d.attr.Atime == nil {
			// Stored by a release that kept no atime, which read as
			// mtime: keep that, as the write moves mtime.
			at := d.attr.Mtime
			d.attr.Atime = &at
		}
	}
	d.staged, d.pending = sf, true
	return nil
}

// Close closes a handle of OpenDraft or CreateFile; the last one commits a
// change that no Flush committed (a new empty file, a truncation).
//
// "Last" is decided and acted on under mu: a handle opened meanwhile (the
// next writer's open with O_TRUNC) cannot slip its truncation in between,
// which the last close of the previous writer would then commit as an
// empty version for every reader to see.
func (d *Draft) Close(ctx context.Context) error {
	d.mu.Lock()
	d.m.mu.Lock()
	d.opens--
	last := d.opens <= 0
	d.m.mu.Unlock()
	var err error
	if last {
		if d.m.afterLastClose != nil {
			d.m.afterLastClose()
		}
		err = d.commitLocked(ctx)
		d.closeReadersLocked()
	}
	d.mu.Unlock()
	if last {
		d.forgetIfIdle()
	}
	return err
}

// closeReadersLocked closes what the node's handles read through: the
// committed version's readers and an unlinked file's bytes. Caller holds
// d.mu, and the node has no handle left.
func (d *Draft) closeReadersLocked() {
	for _, r := range append(d.retired, d.base) {
		if r != nil {
			r.Close()
		}
	}
	d.base, d.retired = nil, nil
	if d.orphan != nil && d.orphan.f != nil {
		d.orphan.f.Close()
		d.orphan.f = nil
	}
}

// forgetIfIdle drops a draft with nothing pending and no handles, so the
// next open starts from the catalog. Changes are only made through open
// handles, so a draft without handles does not become pending after the
// look at pending below.
func (d *Draft) forgetIfIdle() {
	d.mu.Lock()
	pending := d.pending
	d.mu.Unlock()
	if pending {
		return
	}
	d.m.mu.Lock()
	if d.opens <= 0 && d.item.drafts[d.ino] == d {
		delete(d.item.drafts, d.ino)
	}
	d.m.mu.Unlock()
}

// WriteAt writes into the pending version, starting it if needed. Bytes
// written move mtime and ctime.
func (d *Draft) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed {
		return d.orphanWriteAt(ctx, p, off)
	}
	if err := d.beginChange(ctx, true); err != nil {
		return 0, err
	}
	return d.writeStagedLocked(p, off)
}

// writeStagedLocked writes p into the staged bytes at off. Caller holds
// d.mu, and beginChange has succeeded.
func (d *Draft) writeStagedLocked(p []byte, off int64) (int, error) {
	n, err := d.staged.WriteAt(p, off)
	if n > 0 {
		d.dataWritten = true
		contentChanged(&d.attr, d.m.now())
	}
	if err != nil && d.broken == nil {
		d.broken = err
	}
	return n, err
}

// Append writes p at the end of the pending version, for a handle opened
// with O_APPEND. The kernel puts such a write at the size it knows, which
// is the committed one when another descriptor's stat refreshed it (it
// keeps one size per inode): the end is decided here, under the draft's
// lock, so appends by several descriptors all land, one after another.
func (d *Draft) Append(ctx context.Context, p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed {
		end, _ := d.sizeLocked(ctx)
		return d.orphanWriteAt(ctx, p, end)
	}
	if err := d.beginChange(ctx, true); err != nil {
		return 0, err
	}
	return d.writeStagedLocked(p, d.staged.Size())
}

// Truncate sets the pending version's size: truncate(2), ftruncate(2) and
// O_TRUNC, which move mtime and ctime even when the size stays (POSIX
// says so of truncate(2) and O_TRUNC; Linux does it for ftruncate too).
// Truncating to zero needs no copy of the committed content.
func (d *Draft) Truncate(ctx context.Context, size int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed {
		return d.orphanTruncate(ctx, size)
	}
	if err := d.beginChange(ctx, size > 0); err != nil {
		return err
	}
	err := d.staged.Truncate(size)
	if err != nil && d.broken == nil {
		d.broken = err
	}
	if err == nil {
		contentChanged(&d.attr, d.m.now())
	}
	return err
}

// sizeLocked is the size the node's own handles see. Caller holds d.mu.
func (d *Draft) sizeLocked(ctx context.Context) (int64, error) {
	switch {
	case d.removed:
		return d.orphanSizeLocked(), nil
	case d.staged != nil:
		return d.staged.Size(), nil
	case !d.committed:
		return 0, nil
	}
	// Not ItemEntry: it takes every draft's lock of the item, this one's too.
	f, err := d.m.GetFile(ctx, d.item.id, d.name)
	if err != nil {
		return 0, err
	}
	return f.Size, nil
}

// DropSetID clears the set-user-ID and set-group-ID bits after a change by
// a caller without CAP_FSETID, as the kernel would if the bytes went
// through its page cache (they do not: the mount is DIRECT_IO).
func (d *Draft) DropSetID(callerGID uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending || d.removed {
		d.attr.Mode = dropSetID(d.attr, callerGID)
	}
}

// ReadAt reads the node as its own handles see it: the staged bytes while
// a change is pending, else the committed version. After a commit it is
// the new version: a writer always reads what it wrote.
func (d *Draft) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	d.mu.Lock()
	if sf := d.staged; sf != nil {
		d.mu.Unlock()
		return sf.ReadAt(p, off)
	}
	if o := d.orphan; o != nil && o.f != nil {
		f, size := o.f, o.size
		d.mu.Unlock()
		if off >= size {
			return 0, io.EOF
		}
		return f.ReadAt(p[:min(int64(len(p)), size-off)], off)
	}
	if d.base == nil && d.committed && !d.removed {
		r, err := d.m.OpenFileReader(ctx, d.item.id, d.name)
		if err != nil {
			d.mu.Unlock()
			return 0, err
		}
		d.base = r
	}
	r := d.base
	d.mu.Unlock()
	if r == nil {
		return 0, io.EOF // a new name with nothing written, or unlinked so
	}
	return r.ReadAt(p, off)
}

// Sync makes the staged bytes durable without committing (fsync(2)).
func (d *Draft) Sync() error {
	d.mu.Lock()
	sf := d.staged
	d.mu.Unlock()
	if sf == nil {
		return nil
	}
	return sf.sync()
}

// Pending says whether the draft holds a change not committed yet: then
// its Entry is not what others see.
func (d *Draft) Pending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pending || d.removed
}

// Entry is the node as its own handles see it: the pending version's size
// and attributes while there is one, else the committed file.
func (d *Draft) Entry(ctx context.Context) (*FileEntry, error) {
	d.mu.Lock()
	if d.removed {
		defer d.mu.Unlock()
		return &FileEntry{Name: d.name, Size: d.orphanSizeLocked(), Posix: posixOf(d.ino, d.attr), Unlinked: true}, nil
	}
	if d.pending {
		e := &FileEntry{Name: d.name, Posix: posixOf(d.ino, d.attr), Pending: !d.committed}
		if d.staged != nil {
			e.Size = d.staged.Size()
		}
		d.mu.Unlock()
		return e, nil
	}
	name := d.name
	d.mu.Unlock()
	return d.m.ItemEntry(ctx, d.item.id, name)
}

// SetPosix changes mode, owner or mtime: of the pending version while there
// is one (they are committed with it), else of the committed file, as
// metadata without a new version.
//
// Mode and owner also change on the committed file at once, as chmod and
// chown do on any filesystem: they protect the content others read now.
// Times wait for the commit: a new mtime on the old content would make
// rsync and backups take the old bytes for the new version.
func (d *Draft) SetPosix(ctx context.Context, ch PosixChange) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed || (d.pending && !d.committed) {
		ch.apply(&d.attr, d.m.now())
		return nil
	}
	if !d.pending {
		// No report: the kernel learns the committed file's new
		// attributes from the reply to its SETATTR.
		_, err := d.m.setFilePosix(ctx, d.item.id, d.name, ch, false)
		return err
	}
	ch.apply(&d.attr, d.m.now())
	if ch.Mode == nil && ch.UID == nil && ch.GID == nil {
		return nil
	}
	// The kernel gets the pending version's attributes in its reply, but
	// the node may show the committed view (a reader opened first): the
	// report makes it ask again.
	_, err := d.m.setFilePosix(ctx, d.item.id, d.name, PosixChange{Mode: ch.Mode, UID: ch.UID, GID: ch.GID}, true)
	return err
}

// setCommittedPosix is SetPosix for a draft with no pending change: one
// transaction changes the committed file and gives its entry. ok is false
// when the draft has a pending change (or its file is removed): SetPosix
// then.
func (d *Draft) setCommittedPosix(ctx context.Context, ch PosixChange) (e *FileEntry, ok bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed || d.pending {
		return nil, false, nil
	}
	e, err = d.m.setFilePosix(ctx, d.item.id, d.name, ch, false)
	return e, true, err
}

// Commit completes the pending change of this file, if any: validated,
// durable and visible when it returns nil. On error the previous version
// is intact and the change is dropped.
func (d *Draft) Commit(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commitLocked(ctx)
}

func (d *Draft) commitLocked(ctx context.Context) error {
	if !d.pending || d.removed {
		return nil
	}
	// The change leaves the draft here: once sealed it is committed or
	// failed to the end, even if the caller is interrupted (a signal
	// during close(2)); stopping between would drop bytes a retried
	// close could not commit and leave the session's record half
	// finished. Both are bounded (meta's retries, the engine's timeout).
	ctx = context.WithoutCancel(ctx)
	sf := d.staged
	d.staged, d.pending, d.dataWritten = nil, false, false
	mi := d.item
	mi.mu.Lock()
	defer mi.mu.Unlock()
	sid := mi.session
	// Sealed here and recorded READY by the commit's own transaction.
	up, ferr := sf.seal()
	sf.Close()
	attr := d.attr // ctime is the last change's, not the commit's
	over := map[string]fileOverride{d.name: {attr: &attr, fileID: d.ino, sealed: up}}
	if ferr == nil && up.err != nil {
		ferr = up.err
	}
	if ferr == nil && d.broken != nil {
		ferr = d.broken
	}
	d.broken = nil
	if ferr != nil {
		next, _ := d.m.failChanges(ctx, sid, []string{d.name}, ferr)
		mi.session = next
		return ferr
	}
	next, err := d.m.complete(ctx, sid, []string{d.name}, over)
	if err != nil {
		if serverSide(err) {
			mi.session = next // the session failed; a successor carries on
		}
		return err
	}
	mi.session = next
	d.committed = true
	if d.base != nil {
		d.retired = append(d.retired, d.base)
		d.base = nil
	}
	return nil
}

// dropPending drops the draft's pending change from the item's session.
// Caller holds d.mu.
func (d *Draft) dropPending(ctx context.Context) error {
	if !d.pending {
		return nil
	}
	mi := d.item
	mi.mu.Lock()
	defer mi.mu.Unlock()
	d.staged, d.pending, d.dataWritten = nil, false, false
	if mi.session == "" {
		return nil
	}
	s, err := d.m.GetUpdateSession(ctx, mi.session)
	if err != nil || s.State != StateActive {
		return nil // the session is gone, and the change with it
	}
	files, err := d.m.ListSessionFiles(ctx, mi.session)
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.Name == d.name && f.SourceType == SourcePush {
			// For a committed name this leaves a removal behind; the
			// caller either completes it (unlink) or it is harmless
			// because a rename replaces the name in the same breath.
			return d.m.discardChange(ctx, mi.session, d.name)
		}
	}
	return nil
}

// discardChange forgets a session's pending change of a name entirely.
func (m *Manager) discardChange(ctx context.Context, sessionID, name string) error {
	var sid uint64
	var staging string
	err := m.updateNamespace(ctx, func(tx *meta.Tx) error {
		s, err := m.updateRec(tx, sessionID)
		if err != nil {
			return err
		}
		sid = s.ID
		rec, err := tx.UpdateSessionFile(s.ID, name)
		if errors.Is(err, meta.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		staging = rec.Staging
		return tx.DeleteUpdateSessionFile(s.ID, name)
	})
	if err != nil {
		return err
	}
	m.discardUpload(sid, name)
	if staging != "" {
		removeQuietly(staging)
	}
	return nil
}

// RenameFile renames a file within its item, over an existing name unless
// noReplace: one metadata-only transaction; the file keeps its inode
// number, a replaced name's version goes up. A pending change of the
// source is committed first; one of the target is dropped.
func (m *Manager) RenameFile(ctx context.Context, itemID, oldName, newName string, noReplace bool) error {
	if err := ValidateName("file", newName); err != nil {
		return err
	}
	mi := m.mountItem(itemID)
	src := m.draftByName(mi, oldName)
	if src != nil {
		if err := src.Commit(ctx); err != nil {
			return err
		}
	}
	if oldName == newName {
		return nil
	}
	if noReplace {
		if _, err := m.ItemEntry(ctx, itemID, newName); err == nil {
			return errorf(KindAlreadyExists, "file %q already exists", newName)
		}
	}
	if dst := m.draftByName(mi, newName); dst != nil {
		// As in RemoveFile: the target's draft is detached and marked
		// removed first, so the rename then runs to the end whether
		// or not the caller is still there.
		ctx = context.WithoutCancel(ctx)
		dst.mu.Lock()
		dst.detachIfOpen(ctx)
		err := dst.dropPending(ctx)
		dst.removed = true
		dst.mu.Unlock()
		if err != nil {
			return err
		}
		m.mu.Lock()
		delete(mi.drafts, dst.ino)
		m.mu.Unlock()
	}
	// Lock order: the draft, then the item (as Commit takes them).
	if src != nil {
		src.mu.Lock()
		defer src.mu.Unlock()
	}
	mi.mu.Lock()
	defer mi.mu.Unlock()
	var drop []meta.ContentKey
	err := m.waitForPeerMount(ctx, func() error {
		return m.updateNamespace(ctx, func(tx *meta.Tx) error {
			drop = nil
			it, err := m.itemRec(tx, itemID)
			if err != nil {
				return err
			}
			if _, err := m.mountSessionTx(tx, it); err != nil {
				return err
			}
			f, err := tx.File(it, oldName)
			if errors.Is(err, meta.ErrNotFound) {
				return errorf(KindNotFound, "file %s/%s not found", itemLabel(tx, it), oldName)
			}
			if err != nil {
				return err
			}
			now := m.now()
			if old, err := tx.File(it, newName); err == nil {
				if noReplace {
					return errorf(KindAlreadyExists, "file %s/%s already exists", itemLabel(tx, it), newName)
				}
				if drop, err = dropRef(tx, old); err != nil {
					return err
				}
				it.AddSize(-old.Size)
				f.Version = old.Version + 1
			} else if !errors.Is(err, meta.ErrNotFound) {
				return err
			}
			if err := tx.DeleteFile(it, oldName); err != nil {
				return err
			}
			f.Name = newName
			f.Attr.Ctime = now
			if err := tx.PutFile(it, f); err != nil {
				return err
			}
			it.ContentVersion++
			it.LastModifiedTime = now
			it.Attr.Mtime, it.Attr.Ctime = now, now
			return tx.PutItem(it)
		})
	})
	if err != nil {
		return err
	}
	if src != nil {
		src.name = newName
	}
	m.freeBlobs(ctx, drop)
	m.notifyItem(ctx, itemID, oldName, newName)
	return nil
}
