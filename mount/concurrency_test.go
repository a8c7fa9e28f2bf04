package mount

// The concurrency suite (run under -race): writers and readers of one
// file, writers of one item, rename and rmdir during a write, expiry
// during a write. Each outcome is specified: where two processes share a
// file, the mount must end exactly as a local filesystem does (the oracle
// runs the same steps on a file in a temp dir); a reader always reads one
// whole committed version, never an older one than it could see at open.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"clfs/sessionmgr"
)

// step is one call on one of two descriptors, A and B, of the same file.
type step struct {
	fd    int // 0: A, 1: B
	op    string
	data  []byte
	off   int64
	flags int
}

// runSteps runs steps on path and returns what a fresh read of the file
// gives after each close, and the errors of the closes.
func runSteps(t *testing.T, path string, steps []step) (after [][]byte, closeErrs []error) {
	t.Helper()
	var fds [2]*os.File
	for _, s := range steps {
		var err error
		switch s.op {
		case "open":
			fds[s.fd], err = os.OpenFile(path, s.flags, 0o644)
		case "write":
			_, err = fds[s.fd].WriteAt(s.data, s.off)
		case "close":
			cerr := fds[s.fd].Close()
			closeErrs = append(closeErrs, cerr)
			b, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatalf("read after close: %v", rerr)
			}
			after = append(after, b)
		}
		if err != nil {
			t.Fatalf("%s on %c: %v", s.op, 'A'+s.fd, err)
		}
	}
	return after, closeErrs
}

// TestConcTwoWritersSameFile: two descriptors write the same file, in
// interleavings fixed by the test; after each close a fresh read gives
// what it gives on a local filesystem (the writers share one staged copy,
// as they share one inode there), and every close returns 0.
func TestConcTwoWritersSameFile(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	v1, a, b := randomBytes(200000), randomBytes(300000), randomBytes(120000)
	const wr, trunc = os.O_WRONLY, os.O_WRONLY | os.O_TRUNC
	scripts := map[string][]step{
		"both truncate, A closes first": {
			{fd: 0, op: "open", flags: trunc}, {fd: 1, op: "open", flags: trunc},
			{fd: 0, op: "write", data: a}, {fd: 1, op: "write", data: b},
			{fd: 0, op: "close"}, {fd: 1, op: "close"},
		},
		"both truncate, B closes first": {
			{fd: 0, op: "open", flags: trunc}, {fd: 0, op: "write", data: a},
			{fd: 1, op: "open", flags: trunc}, {fd: 1, op: "write", data: b},
			{fd: 1, op: "close"}, {fd: 0, op: "close"},
		},
		"different ranges, no truncation": {
			{fd: 0, op: "open", flags: wr}, {fd: 1, op: "open", flags: wr},
			{fd: 0, op: "write", data: a[:1000], off: 0}, {fd: 1, op: "write", data: b[:1000], off: 150000},
			{fd: 0, op: "close"}, {fd: 1, op: "close"},
		},
		"B writes after A's commit": {
			{fd: 0, op: "open", flags: trunc}, {fd: 1, op: "open", flags: wr},
			{fd: 0, op: "write", data: a}, {fd: 0, op: "close"},
			{fd: 1, op: "write", data: b[:5000], off: 250000}, {fd: 1, op: "close"},
		},
	}
	for name, steps := range scripts {
		t.Run(name, func(t *testing.T) {
			local := filepath.Join(t.TempDir(), "f")
			mnt := filepath.Join(dir, fmt.Sprintf("f%d", len(name)))
			for _, p := range []string{local, mnt} {
				if err := os.WriteFile(p, v1, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, _ := runSteps(t, local, steps)
			got, errs := runSteps(t, mnt, steps)
			for i := range want {
				if errs[i] != nil {
					t.Errorf("close %d: %v", i+1, errs[i])
				}
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("after close %d: %d bytes %s, a local filesystem has %d bytes %s", i+1, len(got[i]), short(got[i]), len(want[i]), short(want[i]))
				}
			}
		})
	}
}

// TestConcWriterAndReaders: one writer commits 30 versions of a file while
// four readers read it over and over. Every read is one whole version (no
// torn content), never older than the last version whose close returned
// before the read's open, and no reader sees versions go backwards.
func TestConcWriterAndReaders(t *testing.T) {
	tm := newMount(t)
	p := filepath.Join(tm.mkItem(t, "lib", "item"), "f")
	const n = 30
	versions := make([][]byte, n)
	index := map[string]int{}
	for i := range versions {
		versions[i] = bytes.Repeat([]byte{byte(i)}, 50000+i*7919) // sizes differ: a cut shows
		copy(versions[i], fmt.Sprintf("version %d|", i))
		index[string(versions[i])] = i
	}
	writeFile(t, p, versions[0], 0o644, time.Time{})
	var committed atomic.Int64 // last version whose close returned
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	errs := make(chan error, 8)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := -1
			for !stop.Load() {
				floor := int(committed.Load())
				b, err := os.ReadFile(p)
				if err != nil {
					errs <- err
					return
				}
				i, ok := index[string(b)]
				switch {
				case !ok:
					errs <- fmt.Errorf("reader %d read %d bytes that are no version: %s", r, len(b), short(b))
					return
				case i < floor:
					errs <- fmt.Errorf("reader %d read version %d after version %d's close returned", r, i, floor)
					return
				case i < last:
					errs <- fmt.Errorf("reader %d read version %d after version %d", r, i, last)
					return
				}
				last = i
				reads.Add(1)
			}
		}()
	}
	for i := 1; i < n; i++ {
		if err := os.WriteFile(p, versions[i], 0o644); err != nil {
			t.Fatal(err)
		}
		committed.Store(int64(i))
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	wantContent(t, p, versions[n-1])
	t.Logf("%d whole reads checked during %d commits", reads.Load(), n-1)
}

// TestConcWritersOneItem: eight writers commit versions of their own file
// of one item at once (successor sessions); each file ends as its last
// version, the API agrees, fsck is clean and no session stays ACTIVE
// with changes in it.
func TestConcWritersOneItem(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	const writers, rounds = 8, 6
	last := make([][]byte, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := filepath.Join(dir, fmt.Sprintf("w%d", w))
			for r := 0; r < rounds; r++ {
				data := randomBytes(1000 + (w*rounds+r)*3001)
				var err error
				if r%2 == 0 {
					err = os.WriteFile(p, data, 0o644)
				} else { // append
					var f *os.File
					if f, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0); err == nil {
						_, err = f.Write(data)
						if cerr := f.Close(); err == nil {
							err = cerr
						}
					}
					data = append(append([]byte{}, last[w]...), data...)
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d round %d: %w", w, r, err)
					return
				}
				last[w] = data
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	files := tm.files(t, "lib", "item")
	for w := 0; w < writers; w++ {
		name := fmt.Sprintf("w%d", w)
		wantContent(t, filepath.Join(dir, name), last[w])
		if f := files[name]; f.ChecksumInfo == nil || f.ChecksumInfo.Checksum != sha256Hex(last[w]) {
			t.Errorf("%s: API checksum differs from the last version", name)
		}
	}
	if len(files) != writers {
		t.Errorf("API lists %d files, want %d", len(files), writers)
	}
	checkQuiet(t, tm)
}

// checkQuiet: fsck clean and no ACTIVE update session holding a change.
func checkQuiet(t *testing.T, tm *testMount) {
	t.Helper()
	ctx := context.Background()
	if rep, err := tm.Manager.Fsck(ctx, nil); err != nil || len(rep.Problems) != 0 {
		t.Errorf("fsck: %v %+v", err, rep)
	}
	ups, err := tm.Manager.ListUpdateSessions(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ups {
		if s.State != sessionmgr.StateActive {
			continue
		}
		files, err := tm.Manager.ListSessionFiles(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			// Unchanged files of the item are listed as NONE, kept.
			if f.SourceType != sessionmgr.SourceNone || !f.KeepInStorage {
				t.Errorf("update session %s is ACTIVE with a change of %s (%s, keep %v) after every writer closed", s.ID, f.Name, f.SourceType, f.KeepInStorage)
			}
		}
	}
}

// TestConcRenameDuringWrite: a file renamed while a descriptor writes it
// ends, after the close, under the new name with everything written (the
// rename commits what was written so far; the rest commits at close); the
// old name is gone. A file renamed over the one being written replaces it:
// the writer's close returns 0 and its bytes are gone, as on a local
// filesystem with an unlinked inode.
func TestConcRenameDuringWrite(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	data := randomBytes(600000)

	f, err := os.Create(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data[:300000]); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "f"), filepath.Join(dir, "g")); err != nil {
		t.Fatalf("rename during the write: %v", err)
	}
	if _, err := f.Write(data[300000:]); err != nil {
		t.Fatalf("write after the rename: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after the rename: %v", err)
	}
	wantContent(t, filepath.Join(dir, "g"), data)
	if _, err := os.Stat(filepath.Join(dir, "f")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old name after rename: %v", err)
	}

	v1, other := randomBytes(1000), randomBytes(2000)
	writeFile(t, filepath.Join(dir, "h"), v1, 0o644, time.Time{})
	writeFile(t, filepath.Join(dir, "other"), other, 0o644, time.Time{})
	w, err := os.OpenFile(filepath.Join(dir, "h"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:100000]); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "other"), filepath.Join(dir, "h")); err != nil {
		t.Fatalf("rename over the file being written: %v", err)
	}
	if _, err := w.Write(data[100000:200000]); err != nil {
		t.Fatalf("write after being renamed over: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close after being renamed over: %v", err)
	}
	wantContent(t, filepath.Join(dir, "h"), other)
	checkQuiet(t, tm)
}

// TestConcRmdirItemDuringWrite: rmdir of an item while a new file of it
// is being written fails with ENOTEMPTY (the name is visible); the write
// then commits as usual and the item can be removed once emptied.
func TestConcRmdirItemDuringWrite(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	data := randomBytes(400000)
	f, err := os.Create(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data[:200000]); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Rmdir(dir); err != syscall.ENOTEMPTY {
		t.Fatalf("rmdir of an item with a file being written: %v, want ENOTEMPTY", err)
	}
	if _, err := f.Write(data[200000:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	wantContent(t, filepath.Join(dir, "new"), data)
	if err := os.Remove(filepath.Join(dir, "new")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Rmdir(dir); err != nil {
		t.Fatalf("rmdir of the emptied item: %v", err)
	}
	checkQuiet(t, tm)
}

// TestConcExpiryDuringWrite: with a fake clock, expiry runs (ten timeouts
// later) while a descriptor is open and idle mid-write: the open handle
// keeps the session alive, so the write goes on and the close commits it
// whole. A session nobody holds (an API client gone) does expire: it is
// CANCELED and its staging removed, and the next write starts afresh.
func TestConcExpiryDuringWrite(t *testing.T) {
	clock := sessionmgr.NewFakeClock(time.Unix(1700000000, 0))
	home, dir := t.TempDir(), newMountpoint(t)
	mt, err := Start(Options{Mountpoint: dir, Home: home, Clock: clock, ReapInterval: -1, SessionTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	tm := &testMount{Mount: mt, t: t, Home: home, Dir: dir, done: make(chan error, 1)}
	go func() { tm.done <- mt.Wait() }()
	t.Cleanup(tm.unmount)
	ctx := context.Background()
	item := tm.mkItem(t, "lib", "item")
	p := filepath.Join(item, "f")
	data := randomBytes(500000)

	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data[:250000]); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Minute)
	if _, err := tm.Manager.ExpireDue(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data[250000:]); err != nil {
		t.Fatalf("write after expiry ran: %v (an open handle keeps its session alive)", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after expiry ran: %v", err)
	}
	wantContent(t, p, data)

	// An abandoned API session expires.
	it := tm.item(t, "lib", "item")
	sid, err := tm.Manager.CreateUpdateSession(ctx, sessionmgr.UpdateSessionCreateSpec{LibraryItemID: it.ID}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.Manager.AddFile(ctx, sid, sessionmgr.FileAddSpec{Name: "f", SourceType: sessionmgr.SourcePush}); err != nil {
		t.Fatal(err)
	}
	up, err := tm.Manager.OpenUpload(ctx, sid, "f", sessionmgr.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.WriteAt([]byte("abandoned"), 0); err != nil {
		t.Fatal(err)
	}
	up.Close()
	if err := os.WriteFile(p, []byte("x"), 0o644); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("write while an API client holds the session: %v, want EBUSY", err)
	}
	clock.Advance(2 * time.Minute)
	if _, err := tm.Manager.ExpireDue(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := tm.Manager.GetUpdateSession(ctx, sid); err != nil || s.State != sessionmgr.StateCanceled {
		t.Fatalf("abandoned session after its timeout: %+v %v, want CANCELED", s, err)
	}
	if staged, _ := filepath.Glob(filepath.Join(home, "storage", "staging", sid, "*")); len(staged) != 0 {
		t.Errorf("staging of the expired session left: %v", staged)
	}
	wantContent(t, p, data)
	v2 := []byte("after expiry\n")
	if err := os.WriteFile(p, v2, 0o644); err != nil {
		t.Fatalf("write after the abandoned session expired: %v", err)
	}
	wantContent(t, p, v2)
	checkQuiet(t, tm)
}
