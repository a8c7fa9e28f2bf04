package mount

// Guarantees 1, 2, 4 and 5 of ARCHITECTURE.md, through the real kernel.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// catFile reads a file through another process.
func catFile(t *testing.T, path string) []byte {
	t.Helper()
	return []byte(mustTool(t, "cat", path).stdout)
}

// TestG1CloseToOpen: when close(2) of a descriptor that changed a file
// returns 0, a fresh open from another process sees the new content, for
// new files, rewrites, appends and in-place writes.
func TestG1CloseToOpen(t *testing.T) {
	tm := newMount(t)
	p := filepath.Join(tm.mkItem(t, "lib", "item"), "f")
	want := []byte{}
	for i := range 20 {
		var f *os.File
		var err error
		var chunk []byte
		switch i % 3 {
		case 0: // rewrite
			f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			chunk = randomBytes(1000 + i*5000)
			want = chunk
		case 1: // append
			f, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			chunk = []byte(fmt.Sprintf("line %d\n", i))
			want = append(append([]byte{}, want...), chunk...)
		case 2: // in place, at the start
			f, err = os.OpenFile(p, os.O_RDWR, 0)
			chunk = []byte(fmt.Sprintf("<%d>", i))
			want = append(append([]byte{}, chunk...), want[len(chunk):]...)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("round %d: close: %v", i, err)
		}
		if got := catFile(t, p); !bytes.Equal(got, want) {
			t.Fatalf("round %d: cat after close sees %d bytes %s, want %d bytes %s", i, len(got), short(got), len(want), short(want))
		}
		if f := tm.file(t, "lib", "item", "f"); f.ChecksumInfo.Checksum != sha256Hex(want) {
			t.Fatalf("round %d: API checksum differs right after close", i)
		}
	}
}

// TestG2NoUncommittedBytes: while a writer is half way through
// rewriting a file, other descriptors (opened before or during the
// write), stat and a new name's readers see the previous version only;
// after its close, the new one.
//
// The reads are made in this process: a child process would inherit the
// writer's descriptor, and its exit closes it, which is a close(2) of the
// writing handle: a commit, by design.
func TestG2NoUncommittedBytes(t *testing.T) {
	tm := newMount(t)
	dir := tm.mkItem(t, "lib", "item")
	p := filepath.Join(dir, "f")
	v1 := randomBytes(300000)
	writeFile(t, p, v1, 0o644, time.Unix(1500000000, 0))
	v2 := randomBytes(len(v1))

	old := func(when string) {
		t.Helper()
		if got := readFile(t, p); !bytes.Equal(got, v1) {
			t.Fatalf("%s: a new descriptor reads %d bytes %s, want the previous version", when, len(got), short(got))
		}
		if st := lstat(t, p); st.Size != int64(len(v1)) || st.Mtim.Sec != 1500000000 {
			t.Fatalf("%s: stat says size %d mtime %d, want the previous version's", when, st.Size, st.Mtim.Sec)
		}
	}

	before, err := os.Open(p) // a reader from before the write
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(v2[:len(v2)/2]); err != nil {
		t.Fatal(err)
	}
	old("half written")

	// A reader that opens now and reads while the writer goes on.
	during, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer during.Close()
	head := make([]byte, 4096)
	if _, err := io.ReadFull(during, head); err != nil || !bytes.Equal(head, v1[:4096]) {
		t.Fatalf("reader opened mid-write: %v, head %s", err, short(head))
	}
	if _, err := w.Write(v2[len(v2)/2:]); err != nil {
		t.Fatal(err)
	}
	// Read on before anything opens the file again (an open drops the
	// kernel's page cache of the file, which would hide written pages).
	rest, err := io.ReadAll(during)
	if got := append(head, rest...); err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("reader opened mid-write read %d bytes %s (%v), want the previous version", len(got), short(got), err)
	}
	if got, err := io.ReadAll(before); err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("reader opened before the write read %d bytes %s (%v), want the previous version", len(got), short(got), err)
	}
	old("all written, not closed")

	// A new name being written is empty for everybody else.
	n, err := os.OpenFile(filepath.Join(dir, "new"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Write([]byte("not yet")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "new")); len(got) != 0 {
		t.Fatalf("reader of a new name being written: %q", got)
	}
	if _, ok := tm.files(t, "lib", "item")["new"]; ok {
		t.Fatal("API lists a new name before its commit")
	}
	if f := tm.file(t, "lib", "item", "f"); f.ChecksumInfo.Checksum != sha256Hex(v1) {
		t.Fatal("API shows uncommitted content")
	}

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if got := catFile(t, p); !bytes.Equal(got, v2) {
		t.Fatalf("after close cat sees %d bytes %s, want the new version", len(got), short(got))
	}
	if got := catFile(t, filepath.Join(dir, "new")); string(got) != "not yet" {
		t.Fatalf("after close cat of the new name: %q", got)
	}
}

// TestG4ReadPinning: a read handle opened before an update commits keeps
// reading the old version to its end; opens and stat show the new version
// at once, while the old reader is still open. Both a shorter and a longer
// new version (the kernel must not cut or extend the old reader).
//
// fstat on the old reader shows the new version: the kernel asks for a
// file's attributes without saying which descriptor they are for, and it
// keeps one size per inode, so a pinned reader's own size cannot be
// served without cutting readers of the new version short. What the old
// reader reads stays pinned; tar would rightly warn that the file changed.
func TestG4ReadPinning(t *testing.T) {
	for _, tc := range []struct {
		name   string
		v2size int
	}{{"shorter", 100000}, {"longer", 3 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			tm := newMount(t)
			p := filepath.Join(tm.mkItem(t, "lib", "item"), "f")
			v1 := randomBytes(1 << 20)
			writeFile(t, p, v1, 0o644, time.Unix(1500000000, 42))
			v2 := randomBytes(tc.v2size)

			r, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			head := make([]byte, 64<<10)
			if _, err := io.ReadFull(r, head); err != nil {
				t.Fatal(err)
			}

			// Another process commits v2.
			src := filepath.Join(t.TempDir(), "v2")
			writeFile(t, src, v2, 0o600, time.Unix(1600000000, 0))
			mustTool(t, "cp", "-p", src, p)
			if f := tm.file(t, "lib", "item", "f"); f.ChecksumInfo.Checksum != sha256Hex(v2) {
				t.Fatal("the update is not committed")
			}

			wantContent(t, p, v2) // a new reader, while the old one is open
			rest, err := io.ReadAll(r)
			if got := append(head, rest...); err != nil || !bytes.Equal(got, v1) {
				t.Fatalf("old reader read %d bytes %s (%v), want v1 (%d bytes)", len(got), short(got), err, len(v1))
			}
			// pread at an offset of the old version still serves it.
			b := make([]byte, 1000)
			if _, err := r.ReadAt(b, 50000); err != nil || !bytes.Equal(b, v1[50000:51000]) {
				t.Fatalf("pread on the old reader: %v", err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			wantContent(t, p, v2)
			if st := lstat(t, p); st.Size != int64(len(v2)) || st.Mtim.Sec != 1600000000 {
				t.Errorf("stat after the old reader closed: size %d mtime %v", st.Size, st.Mtim)
			}
		})
	}
}

// TestG5InodesSurviveRemount: inode numbers, sizes, modes and times of
// libraries, items and files are the same after the home is mounted
// again, at another mountpoint.
func TestG5InodesSurviveRemount(t *testing.T) {
	tm := newMount(t)
	src := t.TempDir()
	rsyncTree(t, src)
	mustTool(t, "rsync", "-a", src+"/", tm.Dir+"/")
	rels := []string{"lib", "lib/a", "lib/b", "lib/a/big.bin", "lib/a/small.txt", "lib/a/empty", "lib/b/run.sh", "lib/b/.hidden"}
	before := map[string]syscall.Stat_t{}
	inos := map[uint64]string{}
	for _, rel := range rels {
		st := lstat(t, tm.path(rel))
		before[rel] = *st
		if other, dup := inos[st.Ino]; dup {
			t.Fatalf("%s and %s share inode %d", rel, other, st.Ino)
		}
		inos[st.Ino] = rel
	}
	tm2 := tm.remount(t, newMountpoint(t))
	for _, rel := range rels {
		a, b := before[rel], *lstat(t, tm2.path(rel))
		if a.Ino != b.Ino || a.Size != b.Size || a.Mode != b.Mode || a.Mtim != b.Mtim || a.Ctim != b.Ctim || a.Uid != b.Uid {
			t.Errorf("%s changed across remount:\nbefore ino %d size %d mode %o mtime %v ctime %v\nafter  ino %d size %d mode %o mtime %v ctime %v",
				rel, a.Ino, a.Size, a.Mode, a.Mtim, a.Ctim, b.Ino, b.Size, b.Mode, b.Mtim, b.Ctim)
		}
	}
	// And reading everything changes none of it.
	compareTrees(t, src, tm2.Dir, treeOpts{mode: true, fileMtime: true, dirMtime: true})
	for _, rel := range rels {
		if a, b := before[rel], *lstat(t, tm2.path(rel)); a.Ctim != b.Ctim || a.Mtim != b.Mtim {
			t.Errorf("%s: reading changed times: ctime %v -> %v", rel, a.Ctim, b.Ctim)
		}
	}
}
