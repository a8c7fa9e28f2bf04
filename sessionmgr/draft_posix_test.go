package sessionmgr

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
	"time"

	"clfs/meta"
)

// The POSIX rules of a file node that sessionmgr owns: which changes move
// mtime, what an unlinked open file keeps, what a writer reads. The mount's
// differential test (mount/posixdiff_test.go) checks the same end to end
// against a native directory.

// draftRead reads all of a draft as its handles see it.
func draftRead(e *testEnv, d *Draft) string {
	e.t.Helper()
	var out []byte
	buf := make([]byte, 7) // small, so reads cross chunk ends
	for off := int64(0); ; {
		n, err := d.ReadAt(e.ctx, buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err == io.EOF || (err == nil && n == 0) {
			return string(out)
		}
		e.must(err)
	}
}

func (e *testEnv) mtime(item, name string) time.Time {
	e.t.Helper()
	f, err := e.m.GetFile(e.ctx, item, name)
	e.must(err)
	return f.Posix.Mtime
}

func TestDraftContentChangesMoveMtime(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	e.commit(item, "f", "0123456789")

	step := func(what string, change func(d *Draft)) time.Time {
		t.Helper()
		e.clock.Advance(time.Second)
		d, err := e.m.OpenDraft(e.ctx, item, "f")
		e.must(err)
		change(d)
		e.must(d.Commit(e.ctx))
		e.must(d.Close(e.ctx))
		return e.mtime(item, "f")
	}
	cases := []struct {
		what   string
		change func(d *Draft)
		moves  bool
	}{
		{"append", func(d *Draft) { _, err := d.WriteAt(e.ctx, []byte("x"), 10); e.must(err) }, true},
		{"overwrite", func(d *Draft) { _, err := d.WriteAt(e.ctx, []byte("y"), 0); e.must(err) }, true},
		{"truncate to another size", func(d *Draft) { e.must(d.Truncate(e.ctx, 4)) }, true},
		{"truncate to the same size", func(d *Draft) { e.must(d.Truncate(e.ctx, 4)) }, true},
		{"O_TRUNC", func(d *Draft) { e.must(d.Truncate(e.ctx, 0)) }, true},
		{"O_TRUNC of an empty file", func(d *Draft) { e.must(d.Truncate(e.ctx, 0)) }, true},
		{"fallocate KEEP_SIZE", func(d *Draft) {
			_, err := d.Allocate(e.ctx, 0, 100, AllocKeepSize)
			e.must(err)
		}, true},
	}
	for _, c := range cases {
		before := e.mtime(item, "f")
		after := step(c.what, c.change)
		if moved := after.After(before); moved != c.moves {
			t.Errorf("%s: mtime %v -> %v, moved %v, want %v", c.what, before, after, moved, c.moves)
		}
		if c.moves && !after.Equal(e.clock.Now()) {
			t.Errorf("%s: mtime %v, want the time of the change %v", c.what, after, e.clock.Now())
		}
	}

	// utimensat after the write wins (cp -p, rsync -a); a write after
	// utimensat moves mtime again.
	set := time.Unix(1500000000, 123)
	got := step("write then utimensat", func(d *Draft) {
		_, err := d.WriteAt(e.ctx, []byte("z"), 0)
		e.must(err)
		e.must(d.SetPosix(e.ctx, PosixChange{Mtime: &set}))
	})
	if !got.Equal(set) {
		t.Errorf("write then utimensat: mtime %v, want %v", got, set)
	}
	got = step("utimensat then write", func(d *Draft) {
		e.must(d.SetPosix(e.ctx, PosixChange{Mtime: &set}))
		_, err := d.WriteAt(e.ctx, []byte("w"), 0)
		e.must(err)
	})
	if !got.Equal(e.clock.Now()) {
		t.Errorf("utimensat then write: mtime %v, want the write's %v", got, e.clock.Now())
	}
}

func TestDraftKeepsAtime(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	d, err := e.m.CreateFile(e.ctx, item, "f", Posix{Mode: 0})
	e.must(err)
	created := e.clock.Now()
	e.clock.Advance(time.Second)
	_, err = d.WriteAt(e.ctx, []byte("data"), 0)
	e.must(err)
	e.must(d.Close(e.ctx))
	f, err := e.m.GetFile(e.ctx, item, "f")
	e.must(err)
	if !f.Posix.Atime.Equal(created) || f.Posix.Mode != 0 {
		t.Fatalf("new file: atime %v mode %o, want the creation time %v and mode 0", f.Posix.Atime, f.Posix.Mode, created)
	}
	at, mt := time.Unix(7, 8), time.Unix(9, 10)
	d, err = e.m.OpenDraft(e.ctx, item, "f")
	e.must(err)
	e.must(d.SetPosix(e.ctx, PosixChange{Atime: &at}))
	e.must(d.SetPosix(e.ctx, PosixChange{Mtime: &mt}))
	e.must(d.Close(e.ctx))
	f, err = e.m.GetFile(e.ctx, item, "f")
	e.must(err)
	if !f.Posix.Atime.Equal(at) || !f.Posix.Mtime.Equal(mt) {
		t.Fatalf("after utimensat: atime %v mtime %v, want %v and %v", f.Posix.Atime, f.Posix.Mtime, at, mt)
	}
	// A write moves mtime, not atime.
	d, err = e.m.OpenDraft(e.ctx, item, "f")
	e.must(err)
	_, err = d.WriteAt(e.ctx, []byte("more"), 4)
	e.must(err)
	e.must(d.Commit(e.ctx))
	e.must(d.Close(e.ctx))
	f, err = e.m.GetFile(e.ctx, item, "f")
	e.must(err)
	if !f.Posix.Atime.Equal(at) || !f.Posix.Mtime.Equal(e.clock.Now()) {
		t.Fatalf("after a write: atime %v mtime %v, want %v and %v", f.Posix.Atime, f.Posix.Mtime, at, e.clock.Now())
	}
}

// TestDraftUnlinkedWhileOpen: the name goes at once, the file lives on
// through its handles, and nothing is committed under the removed name.
func TestDraftUnlinkedWhileOpen(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")

	// A new file, written, then unlinked (the temp-file pattern).
	d, err := e.m.CreateFile(e.ctx, item, "tmp", Posix{Mode: 0o600})
	e.must(err)
	_, err = d.WriteAt(e.ctx, []byte("Hello"), 0)
	e.must(err)
	e.must(e.m.RemoveFile(e.ctx, item, "tmp"))
	if _, err := e.m.ItemEntry(e.ctx, item, "tmp"); KindOf(err) != KindNotFound {
		t.Fatalf("entry of the unlinked name: %v, want NotFound", err)
	}
	ent, err := d.Entry(e.ctx)
	e.must(err)
	if !ent.Unlinked || ent.Size != 5 || ent.Posix.Mode != 0o600 {
		t.Fatalf("entry of the open handle: %+v, want unlinked, 5 bytes, mode 600", ent)
	}
	_, err = d.WriteAt(e.ctx, []byte(" world"), 5)
	e.must(err)
	if got := draftRead(e, d); got != "Hello world" {
		t.Fatalf("read after unlink: %q", got)
	}
	e.must(d.Truncate(e.ctx, 4))
	if got := draftRead(e, d); got != "Hell" {
		t.Fatalf("read after truncate: %q", got)
	}
	e.must(d.Commit(e.ctx))
	e.must(d.Close(e.ctx))
	if fs, err := e.m.ListFiles(e.ctx, item); err != nil || len(fs) != 0 {
		t.Fatalf("files after the last close: %+v, %v; want none", fs, err)
	}

	// A committed file unlinked while a writer has it open: it reads the
	// committed version, and a write after the unlink goes to its own copy.
	item = e.item(e.library("lib2"), "item")
	e.commit(item, "c", "committed")
	d, err = e.m.OpenDraft(e.ctx, item, "c")
	e.must(err)
	e.must(e.m.RemoveFile(e.ctx, item, "c"))
	if got := draftRead(e, d); got != "committed" {
		t.Fatalf("read of an unlinked committed file: %q", got)
	}
	_, err = d.WriteAt(e.ctx, []byte("C"), 0)
	e.must(err)
	if got := draftRead(e, d); got != "Committed" {
		t.Fatalf("read after a write to an unlinked committed file: %q", got)
	}
	e.must(d.Close(e.ctx))
	if _, err := e.m.GetFile(e.ctx, item, "c"); KindOf(err) != KindNotFound {
		t.Fatalf("unlinked file after the last close: %v, want NotFound", err)
	}

	// Renamed over while open: the same.
	item = e.item(e.library("lib3"), "item")
	e.commit(item, "a", "aaa", "b", "bbb")
	d, err = e.m.OpenDraft(e.ctx, item, "b")
	e.must(err)
	_, err = d.WriteAt(e.ctx, []byte("B"), 0)
	e.must(err)
	e.must(e.m.RenameFile(e.ctx, item, "a", "b", false))
	if got := draftRead(e, d); got != "Bbb" {
		t.Fatalf("read of a file renamed over: %q", got)
	}
	e.must(d.Commit(e.ctx))
	e.must(d.Close(e.ctx))
	f, err := e.m.GetFile(e.ctx, item, "b")
	e.must(err)
	if sum := sha256.Sum256([]byte("aaa")); f.ChecksumInfo.Checksum != hex.EncodeToString(sum[:]) {
		t.Fatalf("b after the rename over it: sha256 %s, want that of a's \"aaa\"", f.ChecksumInfo.Checksum)
	}
	e.close() // no session, reader or staging left running
}

// TestDraftWriterReadsWhatItCommitted: after a commit by another handle
// of the node (close of a dup), the writer reads the new version, not the
// one it read before.
func TestDraftWriterReadsWhatItCommitted(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	e.commit(item, "f", "OLDOLDOLD")
	d, err := e.m.OpenDraft(e.ctx, item, "f")
	e.must(err)
	if got := draftRead(e, d); got != "OLDOLDOLD" {
		t.Fatalf("first read: %q", got)
	}
	_, err = d.WriteAt(e.ctx, []byte("NEW"), 0)
	e.must(err)
	e.must(d.Commit(e.ctx))
	if got := draftRead(e, d); got != "NEWOLDOLD" {
		t.Fatalf("read after the commit: %q, want NEWOLDOLD", got)
	}
	e.must(d.Close(e.ctx))
}

func TestDraftAllocate(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	e.commit(item, "f", "0123456789")
	d, err := e.m.OpenDraft(e.ctx, item, "f")
	e.must(err)
	defer d.Close(e.ctx)
	size := func() int64 {
		ent, err := d.Entry(e.ctx)
		e.must(err)
		return ent.Size
	}
	for _, c := range []struct {
		off, n   int64
		mode     uint32
		changed  bool
		size     int64
		contains string
	}{
		{0, 5, 0, false, 10, "0123456789"},                       // inside: nothing to do
		{0, 100, AllocKeepSize, false, 10, "0123456789"},         // preallocation only
		{8, 4, 0, true, 12, "01234567890\x00"[:10] + "\x00\x00"}, // grows with zeros
		{2, 3, AllocPunchHole | AllocKeepSize, true, 12, "01\x00\x00\x0056789\x00\x00"},
		{10, 4, AllocZeroRange, true, 14, "01\x00\x00\x0056789\x00\x00\x00\x00\x00"[:14]},
	} {
		changed, err := d.Allocate(e.ctx, c.off, c.n, c.mode)
		e.must(err)
		if changed != c.changed || size() != c.size {
			t.Errorf("fallocate(%#x, %d, %d): changed %v size %d, want %v and %d", c.mode, c.off, c.n, changed, size(), c.changed, c.size)
		}
	}
	if got := draftRead(e, d); got != "01\x00\x00\x0056789\x00\x00\x00\x00" {
		t.Errorf("content after fallocate: %q", got)
	}
	if _, err := d.Allocate(e.ctx, 0, 1, 0x08 /* COLLAPSE_RANGE */); KindOf(err) != KindUnsupported {
		t.Errorf("fallocate COLLAPSE_RANGE: %v, want Unsupported", err)
	}
}

func TestDraftDropSetID(t *testing.T) {
	for _, c := range []struct{ mode, fileGID, callerGID, want uint32 }{
		{0o6755, 0, 0, 0o0755},    // setgid with group execute: cleared
		{0o6745, 5, 5, 0o2745},    // without group execute, caller in the group: kept
		{0o6745, 5, 1000, 0o0745}, // without group execute, caller not in the group: cleared
		{0o0644, 0, 1000, 0o0644},
	} {
		if got := dropSetID(meta.Attr{Mode: c.mode, GID: c.fileGID}, c.callerGID); got != c.want {
			t.Errorf("dropSetID(%o, file group %d, caller group %d) = %o, want %o", c.mode, c.fileGID, c.callerGID, got, c.want)
		}
	}
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	d, err := e.m.CreateFile(e.ctx, item, "f", Posix{Mode: 0o6755})
	e.must(err)
	_, err = d.WriteAt(e.ctx, []byte("x"), 0)
	e.must(err)
	d.DropSetID(1000)
	e.must(d.Close(e.ctx))
	f, err := e.m.GetFile(e.ctx, item, "f")
	e.must(err)
	if f.Posix.Mode != 0o755 {
		t.Fatalf("mode after an unprivileged write: %o, want 755", f.Posix.Mode)
	}
}

// Records of releases that kept no atime read it as mtime, as they did;
// the first change of such a file keeps that value rather than let atime
// follow the new mtime.
func TestAtimeOfOlderRecords(t *testing.T) {
	if p := posixOf(1, meta.Attr{Mtime: 5e9}); !p.Atime.Equal(time.Unix(5, 0)) {
		t.Fatalf("atime of a record without one: %v, want its mtime", p.Atime)
	}
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	e.commit(item, "f", "data")
	old := e.mtime(item, "f")
	// Make the record look like an earlier release's.
	e.must(e.m.store.Update(e.ctx, func(tx *meta.Tx) error {
		it, err := e.m.itemRec(tx, item)
		if err != nil {
			return err
		}
		f, err := tx.File(it, "f")
		if err != nil {
			return err
		}
		f.Attr.Atime = nil
		return tx.PutFile(it, f)
	}))
	e.clock.Advance(time.Second)
	d, err := e.m.OpenDraft(e.ctx, item, "f")
	e.must(err)
	_, err = d.WriteAt(e.ctx, []byte("more"), 4)
	e.must(err)
	e.must(d.Close(e.ctx))
	f, err := e.m.GetFile(e.ctx, item, "f")
	e.must(err)
	if !f.Posix.Atime.Equal(old) || !f.Posix.Mtime.After(old) {
		t.Fatalf("after a write: atime %v mtime %v, want atime %v (the old mtime) and a later mtime", f.Posix.Atime, f.Posix.Mtime, old)
	}
}

// TestDraftShrinkThenFsync: a small file is staged in memory; shrinking it
// keeps the buffer, and an fsync moved the whole buffer to the staging
// file, tail included, so the commit stored more bytes than the file has
// and every read of it failed as damaged content. Found by the
// differential test (a write, an ftruncate, msync of a shared mapping).
func TestDraftShrinkThenFsync(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	d, err := e.m.CreateFile(e.ctx, item, "f", Posix{Mode: 0o644})
	e.must(err)
	_, err = d.WriteAt(e.ctx, []byte("0123456789abcdef"), 0)
	e.must(err)
	e.must(d.Truncate(e.ctx, 6))
	e.must(d.Sync())
	_, err = d.WriteAt(e.ctx, []byte("X"), 2)
	e.must(err)
	e.must(d.Close(e.ctx))
	r, err := e.m.OpenFileReader(e.ctx, item, "f")
	e.must(err)
	defer r.Close()
	got, err := e.readAll(r.DownloadReader)
	e.must(err)
	if got != "01X345" {
		t.Fatalf("content %q, want \"01X345\"", got)
	}
}

// TestDraftAppendAndChmodWhileWriting: O_APPEND writes land at the pending
// end; mode set while a change is pending protects the committed file at
// once, times wait for the commit.
func TestDraftAppendAndChmodWhileWriting(t *testing.T) {
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "item")
	e.commit(item, "f", "hello")
	before := e.mtime(item, "f")
	d, err := e.m.OpenDraft(e.ctx, item, "f")
	e.must(err)
	for _, p := range []string{"1", "2"} {
		_, err := d.Append(e.ctx, []byte(p))
		e.must(err)
	}
	mode, mt := uint32(0o600), time.Unix(42, 0)
	e.must(d.SetPosix(e.ctx, PosixChange{Mode: &mode, Mtime: &mt}))
	f, err := e.m.GetFile(e.ctx, item, "f")
	e.must(err)
	if f.Posix.Mode != 0o600 || !f.Posix.Mtime.Equal(before) || f.Size != 5 {
		t.Fatalf("committed file while the change is pending: mode %o mtime %v size %d; want 600, %v, 5", f.Posix.Mode, f.Posix.Mtime, f.Size, before)
	}
	e.must(d.Commit(e.ctx))
	e.must(d.Close(e.ctx))
	r, err := e.m.OpenFileReader(e.ctx, item, "f")
	e.must(err)
	defer r.Close()
	if got, err := e.readAll(r.DownloadReader); err != nil || got != "hello12" {
		t.Fatalf("after two appends: %q, %v; want hello12", got, err)
	}
	if f := r.Entry(); !f.Posix.Mtime.Equal(mt) || f.Posix.Mode != 0o600 {
		t.Fatalf("committed: mtime %v mode %o, want %v and 600", f.Posix.Mtime, f.Posix.Mode, mt)
	}
}
