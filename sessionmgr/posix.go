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
	a.Ctime = now
}

func attrFromPosix(p *Posix, now int64, defMode uint32) meta.Attr {
	a := meta.Attr{Mode: defMode, Mtime: now, Ctime: now}
	if p == nil {
		return a
	}
	if p.Mode != 0 {
		a.Mode = p.Mode & 0o7777
	}
	a.UID, a.GID = p.UID, p.GID
	if !p.Mtime.IsZero() {
		a.Mtime = p.Mtime.UnixNano()
	}
	return a
}

func sortBy[T any, K cmp.Ordered](s []T, key func(T) K) {
	slices.SortStableFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
}
