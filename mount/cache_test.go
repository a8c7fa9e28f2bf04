package mount

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"clfs/fs"
	"clfs/sessionmgr"
)

// importFile replaces one file of an item through the API, as `clfs item
// import` does through the control socket while the mount runs.
func importFile(t *testing.T, m *sessionmgr.Manager, lib, item, name string, data []byte) {
	t.Helper()
	ctx := context.Background()
	l, err := m.LibraryByName(ctx, lib)
	if err != nil {
		t.Fatal(err)
	}
	it, err := m.ItemByName(ctx, l.ID, item)
	if err != nil {
		t.Fatal(err)
	}
	importIntoItem(t, m, it.ID, name, data)
}

// importIntoItem is importFile for an item known by its API id.
func importIntoItem(t testing.TB, m *sessionmgr.Manager, itemID, name string, data []byte) {
	t.Helper()
	ctx := context.Background()
	sid, err := m.CreateUpdateSession(ctx, sessionmgr.UpdateSessionCreateSpec{LibraryItemID: itemID}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddFile(ctx, sid, sessionmgr.FileAddSpec{Name: name, SourceType: sessionmgr.SourcePush}); err != nil {
		t.Fatal(err)
	}
	up, err := m.OpenUpload(ctx, sid, name, sessionmgr.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	up.Close()
	if err := m.CompleteUpdateSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
}

// Changes made by another client while mounted show in the mount at once,
// not after the kernel's one-second attribute and entry caches expire.
func TestAPIChangesShowAtOnce(t *testing.T) {
	mnt, mt := mounted(t)
	item := filepath.Join(mnt, "lib", "item")
	if err := os.MkdirAll(item, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(item, "a.txt")
	if err := os.WriteFile(path, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Fill the kernel's caches: attributes (size 2) and pages.
	if got, err := os.ReadFile(path); err != nil || string(got) != "v1" {
		t.Fatalf("read v1: %q %v", got, err)
	}
	importFile(t, mt.Manager, "lib", "item", "a.txt", []byte("version two"))
	eventuallyFast(t, func() error {
		got, err := os.ReadFile(path)
		if err != nil || string(got) != "version two" {
			return errors.New("stale content " + string(got))
		}
		return nil
	})

	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lib, _ := mt.Manager.LibraryByName(ctx, "lib")
	it, _ := mt.Manager.ItemByName(ctx, lib.ID, "item")
	if err := mt.Manager.DeleteItem(ctx, it.ID); err != nil {
		t.Fatal(err)
	}
	eventuallyFast(t, func() error {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			return errors.New("deleted item's file still stats")
		}
		return nil
	})
}

// eventuallyFast retries f for a tenth of the kernel's cache timeout: the
// notification is asynchronous, but must beat the timeout by far.
func eventuallyFast(t *testing.T, f func() error) {
	t.Helper()
	var err error
	for i := 0; i < 20; i++ {
		if err = f(); err == nil {
			return
		}
		sleepMs(5)
	}
	t.Fatalf("not visible within 100ms: %v", err)
}

// Cancelling a download session from the API makes the readers the
// daemon serves (--verify-reads) get EIO.
func TestCancelledDownloadFailsReads(t *testing.T) {
	testCancelledDownload(t, true)
}

// Without --verify-reads, a reader open in passthrough finishes reading
// its pinned version after its download session was cancelled: the kernel
// reads the blob, the daemon sees no read to fail. That it reads on is
// also the proof that passthrough is in use.
func TestCancelledDownloadPassthroughFinishes(t *testing.T) {
	testCancelledDownload(t, false)
}

func testCancelledDownload(t *testing.T, verify bool) {
	tm, _ := mountLoggedOpts(t, Options{VerifyReads: verify})
	mnt, mt := tm.Dir, tm.Mount
	item := filepath.Join(mnt, "lib", "item")
	if err := os.MkdirAll(item, 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 8<<20)
	rand.Read(data)
	path := filepath.Join(item, "big.iso")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var f *os.File
	buf := make([]byte, 4096)
	if verify {
		var err error
		if f, err = os.Open(path); err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadAt(buf, 0); err != nil {
			t.Fatal(err)
		}
	} else {
		f = openPassthrough(t, tm, path)
	}
	defer f.Close()
	ctx := context.Background()
	downs, err := mt.Manager.ListDownloadSessions(ctx, "")
	if err != nil || len(downs) != 1 {
		t.Fatalf("download sessions while reading: %v %v", downs, err)
	}
	if err := mt.Manager.CancelDownloadSession(ctx, downs[0].ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadAt(buf, 6<<20) // beyond what readahead fetched
	if verify && !errors.Is(err, syscall.EIO) {
		t.Fatalf("read after the download session was cancelled: %v, want EIO", err)
	}
	if !verify && (err != nil || !bytes.Equal(buf, data[6<<20:6<<20+4096])) {
		t.Fatalf("passthrough read after the download session was cancelled: %v; want the pinned bytes", err)
	}
	// A new open gets a new session and reads fine.
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fresh read after cancel: %v", err)
	}
}

func sleepMs(n int) { time.Sleep(time.Duration(n) * time.Millisecond) }

// Cancelling the mount's update session from the API while a file is
// being written fails the writer's next write and its close with EIO,
// and leaves the committed version as it was: the writer's bytes from
// before the cancel are not silently dropped from the middle of a file.
func TestCancelledUpdateFailsTheWriter(t *testing.T) {
	mnt, mt := mounted(t)
	item := filepath.Join(mnt, "lib", "item")
	if err := os.MkdirAll(item, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(item, "f.bin")
	v1 := []byte("committed version\n")
	if err := os.WriteFile(path, v1, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	if _, err := f.Write(chunk); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ups, err := mt.Manager.ListUpdateSessions(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	cancelled := 0
	for _, s := range ups {
		if s.State == sessionmgr.StateActive {
			if err := mt.Manager.CancelUpdateSession(ctx, s.ID); err != nil {
				t.Fatal(err)
			}
			cancelled++
		}
	}
	if cancelled != 1 {
		t.Fatalf("%d active update sessions while writing, want 1", cancelled)
	}
	if _, err := f.Write(chunk); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write after the session was cancelled: %v, want EIO", err)
	}
	if err := f.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("close after the session was cancelled: %v, want EIO", err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("after the cancelled write: %q %v, want the committed version", got, err)
	}
	// The next writer starts afresh.
	if err := os.WriteFile(path, []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "v2" {
		t.Fatalf("a new write after the failed one: %q", got)
	}
}

// The kernel keeps listings and attributes for an hour (FOPEN_CACHE_DIR,
// long timeouts): changes through the API must reach every cache an ls -l
// just filled.
func TestAPIChangesShowInCachedListings(t *testing.T) {
	mnt, mt := mounted(t)
	m, ctx := mt.Manager, context.Background()
	item := filepath.Join(mnt, "lib", "item")
	if err := os.MkdirAll(item, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(item, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	names := func(dir string) map[string]bool {
		t.Helper()
		des, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, de := range des {
			out[de.Name()] = true
		}
		return out
	}
	listed := func(dir, name string, want bool) func() error {
		return func() error {
			if names(dir)[name] != want {
				return errors.New(dir + ": " + name + " listed wrongly")
			}
			return nil
		}
	}
	// Fill the caches, twice so that the second comes from the kernel.
	names(mnt)
	names(filepath.Join(mnt, "lib"))
	names(item)
	names(item)
	before, err := os.Stat(item)
	if err != nil {
		t.Fatal(err)
	}

	importFile(t, m, "lib", "item", "b.txt", []byte("bee"))
	eventuallyFast(t, listed(item, "b.txt", true))
	eventuallyFast(t, func() error {
		st, err := os.Stat(item)
		if err != nil || !st.ModTime().After(before.ModTime()) {
			return errors.New("item mtime did not move")
		}
		return nil
	})

	lib, err := m.LibraryByName(ctx, "lib")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateItem(ctx, sessionmgr.ItemCreateSpec{LibraryID: lib.ID, Name: "made-by-api"}, ""); err != nil {
		t.Fatal(err)
	}
	eventuallyFast(t, listed(filepath.Join(mnt, "lib"), "made-by-api", true))

	it, err := m.ItemByName(ctx, lib.ID, "made-by-api")
	if err != nil {
		t.Fatal(err)
	}
	newName := "renamed-by-api"
	if err := m.UpdateItem(ctx, it.ID, sessionmgr.ItemUpdateSpec{Name: &newName}); err != nil {
		t.Fatal(err)
	}
	eventuallyFast(t, listed(filepath.Join(mnt, "lib"), "made-by-api", false))
	eventuallyFast(t, listed(filepath.Join(mnt, "lib"), "renamed-by-api", true))

	if _, err := m.CreateLibrary(ctx, sessionmgr.LibraryCreateSpec{Name: "lib2"}, ""); err != nil {
		t.Fatal(err)
	}
	eventuallyFast(t, listed(mnt, "lib2", true))

	itemID, err := m.ItemByName(ctx, lib.ID, "item")
	if err != nil {
		t.Fatal(err)
	}
	mode := uint32(0o600)
	if err := m.SetFilePosix(ctx, itemID.ID, "a.txt", sessionmgr.PosixChange{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	eventuallyFast(t, func() error {
		st, err := os.Stat(filepath.Join(item, "a.txt"))
		if err != nil || st.Mode().Perm() != 0o600 {
			return errors.New("mode set through the API not shown")
		}
		return nil
	})

	s, err := m.CreateUpdateSession(ctx, sessionmgr.UpdateSessionCreateSpec{LibraryItemID: itemID.ID}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveSessionFile(ctx, s, "b.txt"); err != nil {
		t.Fatal(err)
	}
	if err := m.CompleteUpdateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventuallyFast(t, listed(item, "b.txt", false))
}

// TestBlockSizeFitsRequests: st_blksize is the mount's request size, so
// readers that size their buffer from it (cmp) make one round trip per
// request, not per 4 KiB; st_blocks still counts 512-byte units.
func TestBlockSizeFitsRequests(t *testing.T) {
	mnt, _ := mounted(t)
	item := filepath.Join(mnt, "lib", "item")
	if err := os.MkdirAll(item, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(item, "f")
	if err := os.WriteFile(path, make([]byte, 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blksize != fs.RequestSize || st.Blocks != (100000+4095)/4096*8 {
		t.Errorf("st_blksize %d, st_blocks %d; want %d and %d", st.Blksize, st.Blocks, fs.RequestSize, (100000+4095)/4096*8)
	}
}

// TestPassthroughReadsSkipTheDaemon: reads of committed content are served
// by the kernel from the blob (no READ reaches the daemon), unless the
// mount verifies reads, which keeps every read on the daemon.
func TestPassthroughReadsSkipTheDaemon(t *testing.T) {
	for _, verify := range []bool{false, true} {
		t.Run(fmt.Sprintf("verify_reads=%v", verify), func(t *testing.T) {
			tm, _ := mountLoggedOpts(t, Options{VerifyReads: verify})
			if !verify && !tm.fsys.Passthrough() {
				// Linux before 6.9, or a daemon without root.
				if os.Getenv("CI") != "" {
					t.Fatal("the kernel offers no FUSE passthrough to this mount; CI must run this test on Linux 6.9 or later, as root")
				}
				t.Skip("SKIPPED LOUDLY: the kernel offers no FUSE passthrough to this mount (Linux 6.9 or later and root needed)")
			}
			item := filepath.Join(tm.Dir, "lib", "item")
			if err := os.MkdirAll(item, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(item, "f")
			data := randomBytes(8 << 20)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if !verify {
				openPassthrough(t, tm, path).Close()
			}
			before := tm.fsys.Counters()["READ"]
			for range 2 {
				if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read back: %d bytes, %v", len(got), err)
				}
			}
			reads := tm.fsys.Counters()["READ"] - before
			switch {
			case !verify && reads != 0:
				t.Errorf("%d READ requests reached the daemon; passthrough should serve them all", reads)
			case verify && reads == 0:
				t.Errorf("no READ reached the daemon with verify reads on")
			}
		})
	}
}

// TestPassthroughMixedOpens: writers opening and closing a file (without
// writing) while readers open, read and close it in a loop. The kernel
// refuses a daemon open of an inode that passthrough handles hold, and
// go-fuse shares one backing file among a node's passthrough handles:
// every open must still succeed and every read see the whole content.
func TestPassthroughMixedOpens(t *testing.T) {
	tm := newMount(t)
	path := filepath.Join(tm.mkItem(t, "lib", "item"), "f")
	data := randomBytes(300000)
	writeFile(t, path, data, 0o644, time.Time{})
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				got, err := os.ReadFile(path)
				if err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
				if !bytes.Equal(got, data) {
					errs <- fmt.Errorf("reader read %d bytes %s", len(got), short(got))
					return
				}
			}
		}()
	}
	for i := 0; i < 300 && len(errs) == 0; i++ {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Errorf("writer open %d: %v", i, err)
			break
		}
		if err := f.Close(); err != nil {
			t.Errorf("writer close %d: %v", i, err)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestOwnSetattrKeepsKernelAttrs: chmod, chown and utimensat of a committed
// file through the mount answer the kernel with the new attributes, and
// nothing makes it drop them: a stat afterwards is served by the kernel
// (no GETATTR reaches the daemon), and shows the change.
func TestOwnSetattrKeepsKernelAttrs(t *testing.T) {
	tm := newMount(t)
	path := filepath.Join(tm.mkItem(t, "lib", "item"), "f")
	writeFile(t, path, randomBytes(100000), 0o644, time.Time{})
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(1600000000, 0)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	sleepMs(100) // time for an invalidation, had there been one
	before := tm.fsys.Counters()["GETATTR"]
	st := lstat(t, path)
	if st.Mode&0o7777 != 0o600 || st.Mtim.Sec != mtime.Unix() {
		t.Errorf("after chmod 600 and touch: mode %o mtime %d", st.Mode&0o7777, st.Mtim.Sec)
	}
	if n := tm.fsys.Counters()["GETATTR"] - before; n != 0 {
		t.Errorf("stat after the mount's own chmod and utimensat sent %d GETATTR; the kernel should have kept the attributes of the reply", n)
	}
}

// TestSetattrThroughRetiredNode: a descriptor opened before a writer gave
// the name a new inode (passthrough) still changes the file's mode, and a
// stat by name shows it at once.
func TestSetattrThroughRetiredNode(t *testing.T) {
	tm := newMount(t)
	path := filepath.Join(tm.mkItem(t, "lib", "item"), "f")
	writeFile(t, path, randomBytes(100000), 0o644, time.Time{})
	old, err := os.Open(path) // passthrough: binds the inode to the blob
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	writeFile(t, path, randomBytes(120000), 0o644, time.Time{}) // retires it
	if st := lstat(t, path); st.Size != 120000 {
		t.Fatalf("new version's size %d", st.Size)
	}
	if err := old.Chmod(0o640); err != nil {
		t.Fatal(err)
	}
	eventuallyFast(t, func() error {
		if m := lstat(t, path).Mode & 0o7777; m != 0o640 {
			return fmt.Errorf("mode %o after fchmod 640 through the old descriptor", m)
		}
		return nil
	})
}

// TestAPINamesShowAfterAFailedLookup: the kernel remembers that a name does
// not exist (rsync and tar look a new name up two or three times before
// they create it: one LOOKUP reaches the daemon), and a library, item or
// file created or renamed through the API still shows at once under a
// name a lookup had just found missing.
func TestAPINamesShowAfterAFailedLookup(t *testing.T) {
	tm := newMount(t)
	mnt, m, ctx := tm.Dir, tm.Manager, context.Background()
	item := tm.mkItem(t, "lib", "item")
	missing := func(p string) {
		t.Helper()
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("lstat %s: %v, want ENOENT", p, err)
		}
	}
	exists := func(p string) func() error {
		return func() error {
			_, err := os.Lstat(p)
			return err
		}
	}

	before := tm.fsys.Counters()["LOOKUP"]
	for range 3 {
		missing(filepath.Join(item, "new.bin"))
	}
	if n := tm.fsys.Counters()["LOOKUP"] - before; n != 1 {
		t.Errorf("3 lookups of a missing name sent %d LOOKUPs to the daemon; want 1", n)
	}
	importFile(t, m, "lib", "item", "new.bin", []byte("made by the API"))
	eventuallyFast(t, exists(filepath.Join(item, "new.bin")))

	missing(filepath.Join(mnt, "lib", "api-item"))
	lib, err := m.LibraryByName(ctx, "lib")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateItem(ctx, sessionmgr.ItemCreateSpec{LibraryID: lib.ID, Name: "api-item"}, ""); err != nil {
		t.Fatal(err)
	}
	eventuallyFast(t, exists(filepath.Join(mnt, "lib", "api-item")))

	missing(filepath.Join(mnt, "lib", "renamed"))
	it, err := m.ItemByName(ctx, lib.ID, "api-item")
	if err != nil {
		t.Fatal(err)
	}
	renamed := "renamed"
	if err := m.UpdateItem(ctx, it.ID, sessionmgr.ItemUpdateSpec{Name: &renamed}); err != nil {
		t.Fatal(err)
	}
	eventuallyFast(t, exists(filepath.Join(mnt, "lib", "renamed")))

	missing(filepath.Join(mnt, "api-lib"))
	if _, err := m.CreateLibrary(ctx, sessionmgr.LibraryCreateSpec{Name: "api-lib"}, ""); err != nil {
		t.Fatal(err)
	}
	eventuallyFast(t, exists(filepath.Join(mnt, "api-lib")))

	missing(filepath.Join(mnt, "lib2"))
	newLib := "lib2"
	if err := m.UpdateLibrary(ctx, lib.ID, sessionmgr.LibraryUpdateSpec{Name: &newLib}); err != nil {
		t.Fatal(err)
	}
	eventuallyFast(t, exists(filepath.Join(mnt, "lib2", "renamed")))

	// The mount's own mkdir and create need no help.
	missing(filepath.Join(mnt, "lib2", "own"))
	if err := os.Mkdir(filepath.Join(mnt, "lib2", "own"), 0o755); err != nil {
		t.Fatal(err)
	}
	missing(filepath.Join(mnt, "lib2", "own", "f"))
	if err := os.WriteFile(filepath.Join(mnt, "lib2", "own", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantContent(t, filepath.Join(mnt, "lib2", "own", "f"), []byte("x"))
}

// openPassthrough opens path for reading once the kernel reads it itself:
// the writer's RELEASE comes after its close(2) has returned, and until
// then an open is served by the daemon, as it must be while a writer's
// handle is open. It reads the first 4 KiB to tell (no READ reaches the
// daemon).
func openPassthrough(t *testing.T, tm *testMount, path string) *os.File {
	t.Helper()
	buf := make([]byte, 4096)
	for deadline := time.Now().Add(5 * time.Second); ; {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		before := tm.fsys.Counters()["READ"]
		if _, err := f.ReadAt(buf, 0); err != nil {
			t.Fatal(err)
		}
		if tm.fsys.Counters()["READ"] == before {
			return f
		}
		f.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s: no open read in passthrough within 5 s", path)
		}
		sleepMs(10)
	}
}

// TestWritersSetattrKeepsCommittedView: a writer's ftruncate answers the
// kernel with the pending size, which only the writer sees: with a reader
// open from before, stat by name still shows the committed version.
func TestWritersSetattrKeepsCommittedView(t *testing.T) {
	tm := newMount(t)
	path := filepath.Join(tm.mkItem(t, "lib", "item"), "f")
	writeFile(t, path, randomBytes(300000), 0o644, time.Time{})
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Truncate(1000); err != nil {
		t.Fatal(err)
	}
	if err := w.Chmod(0o600); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, path); st.Size != 300000 {
		t.Errorf("stat by name while a writer has truncated, not closed: size %d, want the committed 300000", st.Size)
	}
}
