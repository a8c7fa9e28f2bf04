package sessionmgr

import (
	"testing"
	"time"
)

// TestDraftSetattr: what a setattr commits and when, and who keeps set-ID
// bits through it.
func TestDraftSetattr(t *testing.T) {
	user := Caller{UID: 1000, GID: 1000}
	root := Caller{Privileged: true}
	size := func(n int64) *int64 { return &n }
	mode := func(m uint32) PosixChange { return PosixChange{Mode: &m} }
	for _, tc := range []struct {
		name string
		ch   SetattrChange
		// want: the change's flag, and the committed file right after
		// (before the handle's commit and close).
		wantChanged   bool
		wantSize      int64
		wantVersion   string
		wantMode      uint32
		afterClose    int64 // size committed once the handle commits and closes
		afterCloseVer string
	}{
		{"truncate by path commits at once", SetattrChange{Size: size(3), By: root},
			false, 3, "2", 0o6755, 3, "2"},
		{"ftruncate is the handle's change", SetattrChange{Size: size(3), By: root, ByHandle: true},
			true, 10, "1", 0o6755, 3, "2"},
		{"truncate by an unprivileged caller drops set-ID bits", SetattrChange{Size: size(3), By: user},
			false, 3, "2", 0o0755, 3, "2"},
		{"ftruncate by an unprivileged caller too", SetattrChange{Size: size(3), By: user, ByHandle: true},
			true, 10, "1", 0o6755, 3, "2"},
		{"chmod is metadata, at once", SetattrChange{Posix: mode(0o600), By: user},
			false, 10, "1", 0o600, 10, "1"},
		{"chmod through a handle too", SetattrChange{Posix: mode(0o600), By: user, ByHandle: true},
			false, 10, "1", 0o600, 10, "1"},
		{"truncate and chmod: the chmod wins over the set-ID drop", SetattrChange{Size: size(3), Posix: mode(0o6700), By: user},
			false, 3, "2", 0o6700, 3, "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			item := e.item(e.library("lib"), "item")
			e.commit(item, "f", "0123456789")
			setMode := uint32(0o6755)
			e.must(e.m.SetFilePosix(e.ctx, item, "f", PosixChange{Mode: &setMode}))
			d, err := e.m.OpenDraft(e.ctx, item, "f")
			e.must(err)
			got, changed, err := d.Setattr(e.ctx, tc.ch)
			e.must(err)
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if tc.ch.Size != nil && got.Size != *tc.ch.Size {
				t.Errorf("the handle sees %d bytes, want %d", got.Size, *tc.ch.Size)
			}
			f, err := e.m.GetFile(e.ctx, item, "f")
			e.must(err)
			if f.Size != tc.wantSize || f.Version != tc.wantVersion || f.Posix.Mode != tc.wantMode {
				t.Errorf("committed: %d bytes, version %s, mode %o; want %d, %s, %o", f.Size, f.Version, f.Posix.Mode, tc.wantSize, tc.wantVersion, tc.wantMode)
			}
			if changed {
				e.must(d.Commit(e.ctx)) // the handle's FLUSH
			}
			e.must(d.Close(e.ctx))
			f, err = e.m.GetFile(e.ctx, item, "f")
			e.must(err)
			if f.Size != tc.afterClose || f.Version != tc.afterCloseVer {
				t.Errorf("after close: %d bytes, version %s; want %d, %s", f.Size, f.Version, tc.afterClose, tc.afterCloseVer)
			}
			if tc.ch.ByHandle && tc.ch.Size != nil && !tc.ch.By.Privileged && f.Posix.Mode != 0o755 {
				t.Errorf("after an unprivileged ftruncate: mode %o, want 755", f.Posix.Mode)
			}
		})
	}
}

// TestDraftTruncateAtOpenAndWriteAs: O_TRUNC is committed by the last
// close, not by a FLUSH; both it and a write drop set-ID bits of an
// unprivileged caller's file, and keep a privileged one's.
func TestDraftTruncateAtOpenAndWriteAs(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	setMode := uint32(0o6755)
	for i, tc := range []struct {
		name string
		by   Caller
		do   func(d *Draft, by Caller) error
		want uint32
	}{
		{"O_TRUNC", Caller{UID: 1000, GID: 1000}, func(d *Draft, by Caller) error { return d.TruncateAtOpen(e.ctx, by) }, 0o755},
		{"O_TRUNC by root", Caller{Privileged: true}, func(d *Draft, by Caller) error { return d.TruncateAtOpen(e.ctx, by) }, 0o6755},
		{"write", Caller{UID: 1000, GID: 1000}, func(d *Draft, by Caller) error { _, err := d.WriteAs(e.ctx, by, []byte("x"), 0); return err }, 0o755},
		{"append", Caller{UID: 1000, GID: 1000}, func(d *Draft, by Caller) error { _, err := d.AppendAs(e.ctx, by, []byte("x")); return err }, 0o755},
		{"write by root", Caller{Privileged: true}, func(d *Draft, by Caller) error { _, err := d.WriteAs(e.ctx, by, []byte("x"), 0); return err }, 0o6755},
	} {
		name := string(rune('a' + i))
		e.commit(item, name, "content")
		e.must(e.m.SetFilePosix(e.ctx, item, name, PosixChange{Mode: &setMode}))
		e.clock.Advance(time.Second)
		d, err := e.m.OpenDraft(e.ctx, item, name)
		e.must(err)
		e.must(tc.do(d, tc.by))
		if f, err := e.m.GetFile(e.ctx, item, name); err != nil || f.Version != "1" {
			t.Errorf("%s: committed before its close: %+v, %v", tc.name, f, err)
		}
		e.must(d.Close(e.ctx))
		f, err := e.m.GetFile(e.ctx, item, name)
		e.must(err)
		if f.Version != "2" || f.Posix.Mode != tc.want {
			t.Errorf("%s: after close: version %s, mode %o; want 2, %o", tc.name, f.Version, f.Posix.Mode, tc.want)
		}
	}
}

func TestPosixChangeApplyTo(t *testing.T) {
	mode, uid := uint32(0o7644), uint32(7)
	mtime, now := time.Unix(100, 5), time.Unix(200, 0)
	p := Posix{Ino: 1, Mode: 0o600, UID: 1, GID: 2, Mtime: time.Unix(1, 0), Atime: time.Unix(2, 0)}
	got := PosixChange{Mode: &mode, UID: &uid, Mtime: &mtime}.ApplyTo(p, now)
	want := Posix{Ino: 1, Mode: 0o7644, UID: 7, GID: 2, Mtime: mtime, Atime: time.Unix(2, 0), Ctime: now}
	if got != want {
		t.Fatalf("ApplyTo = %+v, want %+v", got, want)
	}
}
