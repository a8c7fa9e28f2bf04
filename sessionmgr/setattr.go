package sessionmgr

import (
	"context"
	"time"
)

// The rules of the mount's content changes that depend on who makes them
// and how: truncate(2) by path commits at once, ftruncate(2) and writes
// commit at their descriptor's close, O_TRUNC at the last close unless a
// write follows; a change of content by a caller without CAP_FSETID drops
// the set-user-ID and set-group-ID bits, as the kernel does when the bytes
// go through its page cache (they do not: the mount is DIRECT_IO).

// Caller is who makes a change through the mount.
type Caller struct {
	UID, GID uint32
	// Privileged callers keep set-ID bits through a change of content
	// (CAP_FSETID).
	Privileged bool
}

// dropSetIDFor drops the set-ID bits after a change of content by c.
func (d *Draft) dropSetIDFor(c Caller) {
	if !c.Privileged {
		d.DropSetID(c.GID)
	}
}

// SetattrChange is a setattr(2) of a file: truncate, chmod, chown,
// utimensat, or several at once.
type SetattrChange struct {
	Size  *int64      // a change of content: truncate(2), ftruncate(2)
	Posix PosixChange // metadata, as SetPosix
	By    Caller
	// ByHandle: the change comes through the node's open handles
	// (ftruncate(2)), which commit it at their close. A size change by
	// path (truncate(2)) is self-contained and committed at once.
	ByHandle bool
}

// Setattr applies ch to the node and returns the node as its handles see
// it afterwards. changed tells that the handle ch came through changed the
// content: its close commits the change, as it would a write's.
func (d *Draft) Setattr(ctx context.Context, ch SetattrChange) (e *FileEntry, changed bool, err error) {
	if ch.Size == nil && ch.Posix != (PosixChange{}) {
		// chmod, chown or utimensat of a committed file (tar and rsync
		// make two or three for each file they write): its entry comes
		// from the same transaction.
		if e, ok, err := d.setCommittedPosix(ctx, ch.Posix); ok {
			return e, false, err
		}
	}
	if ch.Size != nil {
		if err := d.Truncate(ctx, *ch.Size); err != nil {
			return nil, false, err
		}
		changed = ch.ByHandle
		d.dropSetIDFor(ch.By)
	}
	if ch.Posix != (PosixChange{}) {
		if err := d.SetPosix(ctx, ch.Posix); err != nil {
			return nil, changed, err
		}
	}
	if ch.Size != nil && !ch.ByHandle {
		if err := d.Commit(ctx); err != nil {
			return nil, false, err
		}
	}
	e, err = d.Entry(ctx)
	return e, changed, err
}

// TruncateAtOpen is O_TRUNC: a change of content, but not one of the new
// handle's (echo > f sends a FLUSH before its first write): the last
// close commits it unless a write of the handle's does first.
func (d *Draft) TruncateAtOpen(ctx context.Context, by Caller) error {
	if err := d.Truncate(ctx, 0); err != nil {
		return err
	}
	d.dropSetIDFor(by)
	return nil
}

// WriteAs is WriteAt by a caller: bytes written drop set-ID bits.
func (d *Draft) WriteAs(ctx context.Context, by Caller, p []byte, off int64) (int, error) {
	n, err := d.WriteAt(ctx, p, off)
	if n > 0 {
		d.dropSetIDFor(by)
	}
	return n, err
}

// AppendAs is Append by a caller: bytes written drop set-ID bits.
func (d *Draft) AppendAs(ctx context.Context, by Caller, p []byte) (int, error) {
	n, err := d.Append(ctx, p)
	if n > 0 {
		d.dropSetIDFor(by)
	}
	return n, err
}

// ApplyTo applies the change to attributes kept outside the catalog (what
// readers of an unlinked file see in fstat(2)); ctime moves to now.
func (c PosixChange) ApplyTo(p Posix, now time.Time) Posix {
	if c.Mode != nil {
		p.Mode = *c.Mode & 0o7777
	}
	if c.UID != nil {
		p.UID = *c.UID
	}
	if c.GID != nil {
		p.GID = *c.GID
	}
	if c.Mtime != nil {
		p.Mtime = *c.Mtime
	}
	if c.Atime != nil {
		p.Atime = *c.Atime
	}
	p.Ctime = now
	return p
}
