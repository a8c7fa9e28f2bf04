package sessionmgr

import (
	"cmp"
	"slices"
	"time"

	"clfs/meta"
)

// PosixChange is a setattr: nil fields are left as they are. Changing
// attributes is metadata only; it never makes a content version.
type PosixChange struct {
	Mode  *uint32
	UID   *uint32
	GID   *uint32
	Mtime *time.Time
	Atime *time.Time
}

func (c PosixChange) apply(a *meta.Attr, now int64) {
	if c.Mode != nil {
		a.Mode = *c.Mode & 0o7777
	}
	if c.UID != nil {
		a.UID = *c.UID
	}
	if c.GID != nil {
		a.GID = *c.GID
	}
	if c.Mtime != nil {
		a.Mtime = c.Mtime.UnixNano()
	}
	if c.Atime != nil {
		at := c.Atime.UnixNano()
		a.Atime = &at
	}
	a.Ctime = now
}

// attrFromPosix is the attributes of a new file. Mode 0 is a mode (cp -a
// of a 000 file must not open it up), so defMode applies only without p.
func attrFromPosix(p *Posix, now int64, defMode uint32) meta.Attr {
	a := meta.Attr{Mode: defMode, Mtime: now, Ctime: now}
	if p == nil {
		return a
	}
	a.Mode = p.Mode & 0o7777
	a.UID, a.GID = p.UID, p.GID
	if !p.Mtime.IsZero() {
		a.Mtime = p.Mtime.UnixNano()
	}
	if !p.Atime.IsZero() {
		at := p.Atime.UnixNano()
		a.Atime = &at
	}
	return a
}

// contentChanged moves mtime and ctime to now, as a write or a truncate
// that changes content does (POSIX); a utimensat after it wins.
func contentChanged(a *meta.Attr, now int64) {
	a.Mtime, a.Ctime = now, now
}

// dropSetID is the mode after a change of content by a caller without
// CAP_FSETID, as Linux has it: set-user-ID goes; set-group-ID goes too when
// group execute is set, or when the caller is not in the file's group
// (FUSE tells only the caller's primary group).
func dropSetID(a meta.Attr, callerGID uint32) uint32 {
	mode := a.Mode &^ 0o4000
	if mode&0o010 != 0 || callerGID != a.GID {
		mode &^= 0o2000
	}
	return mode
}

func sortBy[T any, K cmp.Ordered](s []T, key func(T) K) {
	slices.SortStableFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
}
