package mount

// Real tools against a real mount: cp, rsync, restic, tar, find, du, ls,
// stat. Each test mounts a fresh home; commands are the installed
// binaries, run with exec.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// ovfFolder writes an OVF-like package into dir: x.ovf referencing
// x-disk1.vmdk (5 MiB random) and an x.mf manifest of both.
func ovfFolder(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	disk := randomBytes(5 << 20)
	ovf := []byte(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
    <File ovf:href="x-disk1.vmdk" ovf:id="file1" ovf:size="` + strconv.Itoa(len(disk)) + `"/>
  </References>
  <DiskSection><Disk ovf:capacity="5" ovf:diskId="vmdisk1" ovf:fileRef="file1"/></DiskSection>
</Envelope>
`)
	mf := []byte(fmt.Sprintf("SHA256(x.ovf)= %s\nSHA256(x-disk1.vmdk)= %s\n", sha256Hex(ovf), sha256Hex(disk)))
	files := map[string][]byte{"x.ovf": ovf, "x-disk1.vmdk": disk, "x.mf": mf}
	mtime := time.Unix(1600000000, 123456789)
	for name, data := range files {
		writeFile(t, filepath.Join(dir, name), data, 0o640, mtime)
	}
	return files
}

// wantAPIFiles fails unless the item's committed files, as the API lists
// them, are exactly want: names, sizes and SHA-256.
func wantAPIFiles(t *testing.T, tm *testMount, lib, item string, want map[string][]byte) {
	t.Helper()
	got := tm.files(t, lib, item)
	if len(got) != len(want) {
		t.Errorf("%s/%s: API lists %d files, want %d: %v", lib, item, len(got), len(want), got)
	}
	for name, data := range want {
		f, ok := got[name]
		if !ok {
			t.Errorf("%s/%s: API does not list %s", lib, item, name)
			continue
		}
		if f.Size != int64(len(data)) {
			t.Errorf("%s/%s/%s: API size %d, want %d", lib, item, name, f.Size, len(data))
		}
		if f.ChecksumInfo == nil || f.ChecksumInfo.Checksum != sha256Hex(data) {
			t.Errorf("%s/%s/%s: API checksum %v, want %s", lib, item, name, f.ChecksumInfo, sha256Hex(data))
		}
	}
}

// TestCpOVFFolder: cp, cp -r and cp -a of an OVF package into an item:
// bytes identical, the API agrees, and cp -a keeps mode and mtime.
func TestCpOVFFolder(t *testing.T) {
	tm := newMount(t)
	src := filepath.Join(t.TempDir(), "x")
	files := ovfFolder(t, src)
	if err := os.Mkdir(tm.path("lib"), 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("cp", func(t *testing.T) {
		dst := tm.mkItem(t, "lib", "cp")
		args := []string{filepath.Join(src, "x.ovf"), filepath.Join(src, "x-disk1.vmdk"), filepath.Join(src, "x.mf"), dst}
		mustTool(t, "cp", args...)
		mustTool(t, "cmp", filepath.Join(src, "x-disk1.vmdk"), filepath.Join(dst, "x-disk1.vmdk"))
		compareTrees(t, src, dst, treeOpts{})
		wantAPIFiles(t, tm, "lib", "cp", files)
	})
	t.Run("cp -r", func(t *testing.T) {
		mustTool(t, "cp", "-r", src, tm.path("lib", "cpr")) // the folder becomes the item
		compareTrees(t, src, tm.path("lib", "cpr"), treeOpts{})
		wantAPIFiles(t, tm, "lib", "cpr", files)
	})
	t.Run("cp -a", func(t *testing.T) {
		mustTool(t, "cp", "-a", src, tm.path("lib", "cpa"))
		compareTrees(t, src, tm.path("lib", "cpa"), treeOpts{mode: true, fileMtime: true, dirMtime: true})
		wantAPIFiles(t, tm, "lib", "cpa", files)
		for name := range files {
			s, d := lstat(t, filepath.Join(src, name)), lstat(t, tm.path("lib", "cpa", name))
			if s.Mode != d.Mode || s.Mtim != d.Mtim {
				t.Errorf("%s: mode %o mtime %v, want %o %v", name, d.Mode, d.Mtim, s.Mode, s.Mtim)
			}
		}
	})
}

// rsyncTree writes a library directory with two items: a 4 MiB file,
// small files, modes 0600/0644/0755 and odd mtimes (nanoseconds, before
// 1970, far future).
func rsyncTree(t *testing.T, root string) {
	t.Helper()
	lib := filepath.Join(root, "lib")
	writeFile(t, filepath.Join(lib, "a", "big.bin"), randomBytes(4<<20), 0o644, time.Unix(1700000000, 999999999))
	writeFile(t, filepath.Join(lib, "a", "small.txt"), []byte("small\n"), 0o600, time.Unix(1, 1))
	writeFile(t, filepath.Join(lib, "a", "empty"), nil, 0o644, time.Unix(1500000000, 5))
	writeFile(t, filepath.Join(lib, "b", "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755, time.Unix(-86400*365, 42))
	writeFile(t, filepath.Join(lib, "b", ".hidden"), randomBytes(12345), 0o600, time.Unix(4102444800, 7))
	for _, d := range []struct {
		path string
		mode os.FileMode
		t    time.Time
	}{
		{filepath.Join(lib, "a"), 0o750, time.Unix(1234567890, 111)},
		{filepath.Join(lib, "b"), 0o700, time.Unix(1111111111, 222)},
		{lib, 0o755, time.Unix(1222222222, 333)},
	} {
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(d.path, d.t, d.t); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRsync: rsync -a of a library into the mount root, a second run with
// nothing to do, --inplace, --delete, --checksum, and rsync -a back out.
//
// The source is src/lib, not src/: rsync would also set the times of the
// mount root itself, which clfs does not store (see fs/root.go).
func TestRsync(t *testing.T) {
	tm := newMount(t)
	src := t.TempDir()
	rsyncTree(t, src)
	all := treeOpts{mode: true, fileMtime: true, dirMtime: true}
	lib := filepath.Join(src, "lib")

	mustTool(t, "rsync", "-a", lib, tm.Dir+"/")
	if n := compareTrees(t, src, tm.Dir, all); n != 5 {
		t.Fatalf("compared %d files, want 5", n)
	}
	if r := mustTool(t, "rsync", "-ai", lib, tm.Dir+"/"); strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("second rsync -ai has changes:\n%s", r.stdout)
	}
	if got := tm.files(t, "lib", "a"); len(got) != 3 || got["big.bin"].Size != 4<<20 {
		t.Fatalf("API lists %v", got)
	}

	t.Run("inplace", func(t *testing.T) {
		p := filepath.Join(src, "lib", "a", "big.bin")
		data := readFile(t, p)
		copy(data[1<<20:], "changed in place")
		data = data[:len(data)-1000]
		writeFile(t, p, data, 0o644, time.Unix(1700000001, 1))
		mustTool(t, "rsync", "-a", "--inplace", "--no-whole-file", lib, tm.Dir+"/")
		wantContent(t, tm.path("lib", "a", "big.bin"), data)
		compareTrees(t, src, tm.Dir, all)
		if f := tm.file(t, "lib", "a", "big.bin"); f.ChecksumInfo.Checksum != sha256Hex(data) {
			t.Fatalf("API checksum %s, want %s", f.ChecksumInfo.Checksum, sha256Hex(data))
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := os.Remove(filepath.Join(src, "lib", "b", ".hidden")); err != nil {
			t.Fatal(err)
		}
		mustTool(t, "rsync", "-a", "--delete", lib, tm.Dir+"/")
		if _, err := os.Lstat(tm.path("lib", "b", ".hidden")); !os.IsNotExist(err) {
			t.Fatalf("deleted file still in the mount: %v", err)
		}
		if _, ok := tm.files(t, "lib", "b")[".hidden"]; ok {
			t.Fatal("deleted file still listed by the API")
		}
		// rsync sets lib/b's time before it deletes in it, and takes
		// directory times in the same second as equal (on any
		// filesystem): give lib/b a time in another second, and the next
		// run fixes that, and only that.
		compareTrees(t, src, tm.Dir, treeOpts{mode: true, fileMtime: true})
		if err := os.Chtimes(filepath.Join(src, "lib", "b"), time.Unix(1111111112, 333), time.Unix(1111111112, 333)); err != nil {
			t.Fatal(err)
		}
		r := mustTool(t, "rsync", "-ai", lib, tm.Dir+"/")
		if strings.TrimSpace(r.stdout) != ".d..t...... lib/b/" {
			t.Fatalf("rsync after --delete: %q", r.stdout)
		}
		compareTrees(t, src, tm.Dir, all)
	})
	t.Run("checksum", func(t *testing.T) {
		// Same size and mtime, other bytes: only --checksum finds it.
		p := filepath.Join(src, "lib", "a", "small.txt")
		writeFile(t, p, []byte("SMALL\n"), 0o600, time.Unix(1, 1))
		if r := mustTool(t, "rsync", "-ai", lib, tm.Dir+"/"); strings.TrimSpace(r.stdout) != "" {
			t.Fatalf("quick check should see no change:\n%s", r.stdout)
		}
		r := mustTool(t, "rsync", "-ai", "--checksum", lib, tm.Dir+"/")
		if !strings.Contains(r.stdout, "lib/a/small.txt") || strings.Count(strings.TrimSpace(r.stdout), "\n") != 0 {
			t.Fatalf("rsync --checksum should update exactly small.txt:\n%s", r.stdout)
		}
		wantContent(t, tm.path("lib", "a", "small.txt"), []byte("SMALL\n"))
		if r := mustTool(t, "rsync", "-ai", "--checksum", lib, tm.Dir+"/"); strings.TrimSpace(r.stdout) != "" {
			t.Fatalf("second rsync --checksum has changes:\n%s", r.stdout)
		}
	})
	t.Run("out", func(t *testing.T) {
		out := t.TempDir()
		mustTool(t, "rsync", "-a", tm.Dir+"/", out+"/")
		if n := compareTrees(t, src, out, all); n != 4 {
			t.Fatalf("compared %d files, want 4", n)
		}
		compareTrees(t, tm.Dir, out, all)
	})
}

// resticSummary is the last line of restic backup --json.
type resticSummary struct {
	MessageType         string `json:"message_type"`
	FilesNew            int    `json:"files_new"`
	FilesChanged        int    `json:"files_changed"`
	FilesUnmodified     int    `json:"files_unmodified"`
	DirsChanged         int    `json:"dirs_changed"`
	TotalFilesProcessed int    `json:"total_files_processed"`
}

func resticBackup(t *testing.T, env []string, dir string) resticSummary {
	t.Helper()
	r := toolIn(t, dir, env, "restic", "backup", "--json", ".")
	if r.code != 0 {
		t.Fatalf("restic backup: %v", r)
	}
	var sum resticSummary
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var s resticSummary
		if json.Unmarshal(sc.Bytes(), &s) == nil && s.MessageType == "summary" {
			sum = s
		}
	}
	if sum.MessageType != "summary" {
		t.Fatalf("restic backup printed no summary:\n%s", r.stdout)
	}
	return sum
}

// TestResticBackupRemount: restic backs the mount up, restores it byte
// for byte, and after a remount of the same home finds nothing changed.
func TestResticBackupRemount(t *testing.T) {
	tm := newMount(t)
	src := t.TempDir()
	rsyncTree(t, src)
	mustTool(t, "rsync", "-a", src+"/", tm.Dir+"/")

	repo := filepath.Join(t.TempDir(), "repo")
	env := []string{"RESTIC_PASSWORD=clfs-test", "RESTIC_REPOSITORY=" + repo, "RESTIC_CACHE_DIR=" + t.TempDir()}
	if r := toolIn(t, "", env, "restic", "init"); r.code != 0 {
		t.Fatalf("restic init: %v", r)
	}
	first := resticBackup(t, env, tm.Dir)
	if first.FilesNew != 5 {
		t.Fatalf("first backup: %+v, want 5 new files", first)
	}
	restored := t.TempDir()
	if r := toolIn(t, "", env, "restic", "restore", "latest", "--target", restored); r.code != 0 {
		t.Fatalf("restic restore: %v", r)
	}
	compareTrees(t, src, restored, treeOpts{mode: true, fileMtime: true})

	// Unchanged on the same mount, then after a remount of the same home
	// at the same mountpoint (restic finds its parent snapshot by path).
	if s := resticBackup(t, env, tm.Dir); s.FilesNew != 0 || s.FilesChanged != 0 {
		t.Errorf("second backup, same mount: %+v", s)
	}
	tm2 := tm.remount(t, "")
	if s := resticBackup(t, env, tm2.Dir); s.FilesNew != 0 || s.FilesChanged != 0 || s.FilesUnmodified != 5 {
		t.Errorf("backup after remount: %+v", s)
	}
}

// TestTarCreate: tar c of the mount restores byte for byte, with modes
// and (whole-second) mtimes, and never says "file changed as we read it".
func TestTarCreate(t *testing.T) {
	tm := newMount(t)
	src := t.TempDir()
	rsyncTree(t, src)
	mustTool(t, "rsync", "-a", src+"/", tm.Dir+"/")

	archive := filepath.Join(t.TempDir(), "mnt.tar")
	r := tool(t, "tar", "-C", tm.Dir, "-cf", archive, ".")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("tar c: %v", r)
	}
	out := t.TempDir()
	mustTool(t, "tar", "-C", out, "-xpf", archive)
	compareTrees(t, src, out, treeOpts{mode: true})
}

// TestTarExtract: tar x into the mount makes the library, items and
// files with their modes and mtimes (tar sets whole seconds). Run as
// root, tar also chowns to the archive's owner, which clfs stores.
func TestTarExtract(t *testing.T) {
	tm := newMount(t)
	src := t.TempDir()
	rsyncTree(t, src)
	archive := filepath.Join(t.TempDir(), "src.tar")
	mustTool(t, "tar", "-C", src, "-cf", archive, "lib")

	r := tool(t, "tar", "--warning=no-timestamp", "-C", tm.Dir, "-xpf", archive)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("tar x into the mount: %v", r)
	}
	compareTrees(t, src, tm.Dir, treeOpts{mode: true})
	for _, rel := range []string{"lib/a/big.bin", "lib/a/small.txt", "lib/b/run.sh", "lib/b", "lib"} {
		s, d := lstat(t, filepath.Join(src, rel)), lstat(t, tm.path(rel))
		if s.Mtim.Sec != d.Mtim.Sec {
			t.Errorf("%s: mtime %d, want %d", rel, d.Mtim.Sec, s.Mtim.Sec)
		}
	}
	wantAPIFiles(t, tm, "lib", "b", map[string][]byte{
		"run.sh":  readFile(t, filepath.Join(src, "lib", "b", "run.sh")),
		".hidden": readFile(t, filepath.Join(src, "lib", "b", ".hidden")),
	})

	// Extracting again over existing files: tar unlinks and re-creates.
	r = tool(t, "tar", "--warning=no-timestamp", "-C", tm.Dir, "-xpf", archive)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("second tar x into the mount: %v", r)
	}
	compareTrees(t, src, tm.Dir, treeOpts{mode: true})
}

// TestListingToolsAgree: find, du -b, du -k, ls -lR, ls -i and stat show
// the same files, sizes and inode numbers.
func TestListingToolsAgree(t *testing.T) {
	tm := newMount(t)
	src := t.TempDir()
	rsyncTree(t, src)
	mustTool(t, "rsync", "-a", src+"/", tm.Dir+"/")
	files := map[string]int64{} // path relative to the mount -> size
	filepathWalk(t, src, func(rel string, st *syscall.Stat_t) {
		if st.Mode&syscall.S_IFMT == syscall.S_IFREG {
			files[rel] = st.Size
		}
	})

	// find: every file with its size and inode.
	found := map[string][2]int64{}
	r := mustTool(t, "find", tm.Dir, "-type", "f", "-printf", "%P %s %i\n")
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f := strings.Fields(line)
		size, _ := strconv.ParseInt(f[1], 10, 64)
		ino, _ := strconv.ParseInt(f[2], 10, 64)
		found[f[0]] = [2]int64{size, ino}
	}
	if len(found) != len(files) {
		t.Fatalf("find lists %d files, want %d:\n%s", len(found), len(files), r.stdout)
	}
	var total int64
	for rel, size := range files {
		if found[rel][0] != size {
			t.Errorf("find: %s size %d, want %d", rel, found[rel][0], size)
		}
		total += size
	}
	if n := strings.Count(mustTool(t, "find", tm.Dir, "-type", "d").stdout, "\n"); n != 4 {
		t.Errorf("find -type d: %d directories, want 4 (root, lib, 2 items)", n)
	}

	// du -b: apparent sizes add up (clfs directories have size 0).
	dub := mustTool(t, "du", "-b", "-s", tm.Dir).stdout
	if got, _ := strconv.ParseInt(strings.Fields(dub)[0], 10, 64); got != total {
		t.Errorf("du -b -s: %d, want %d", got, total)
	}
	// du -k: blocks of 1 KiB, at least the size of each file.
	for rel, size := range files {
		kb, _ := strconv.ParseInt(strings.Fields(mustTool(t, "du", "-k", tm.path(rel)).stdout)[0], 10, 64)
		if want := (size + 4095) / 4096 * 4; kb != want {
			t.Errorf("du -k %s: %d, want %d", rel, kb, want)
		}
	}

	// ls -lR and ls -i agree with find; stat with ls.
	lsR := mustTool(t, "ls", "-lRna", "--time-style=+%s", tm.Dir).stdout
	for rel, size := range files {
		re := regexp.MustCompile(`(?m)^-\S+\s+1\s+\d+\s+\d+\s+` + strconv.FormatInt(size, 10) + `\s+-?\d+\s+` + regexp.QuoteMeta(filepath.Base(rel)) + `$`)
		if !re.MatchString(lsR) {
			t.Errorf("ls -lR: no line for %s with size %d:\n%s", rel, size, lsR)
		}
		lsi := strings.Fields(mustTool(t, "ls", "-i", tm.path(rel)).stdout)
		ino, _ := strconv.ParseInt(lsi[0], 10, 64)
		st := strings.Fields(mustTool(t, "stat", "-c", "%i %s %h %F", tm.path(rel)).stdout)
		sino, _ := strconv.ParseInt(st[0], 10, 64)
		ssize, _ := strconv.ParseInt(st[1], 10, 64)
		if ino != found[rel][1] || sino != ino || ssize != size || st[2] != "1" {
			t.Errorf("%s: ls -i %d, find %d, stat %v; size %d", rel, ino, found[rel][1], st, size)
		}
	}
	// Directories: stat's inode is what ls -di says, and distinct.
	seen := map[string]string{}
	for _, d := range []string{"lib", "lib/a", "lib/b"} {
		ino := strings.Fields(mustTool(t, "ls", "-di", tm.path(d)).stdout)[0]
		if s := strings.TrimSpace(mustTool(t, "stat", "-c", "%i", tm.path(d)).stdout); s != ino {
			t.Errorf("%s: stat inode %s, ls -di %s", d, s, ino)
		}
		if other, dup := seen[ino]; dup {
			t.Errorf("%s and %s share inode %s", d, other, ino)
		}
		seen[ino] = d
	}
}

// filepathWalk calls f for everything under root, by relative path.
func filepathWalk(t *testing.T, root string, f func(rel string, st *syscall.Stat_t)) {
	t.Helper()
	var rels []string
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rels = append(rels, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		f(rel, lstat(t, filepath.Join(root, rel)))
	}
}

// TestFSTest runs testing/fstest over the quiescent mount: listings,
// Stat and ReadDir agree, reads repeat, seeks and ReadAt work.
func TestFSTest(t *testing.T) {
	tm := newMount(t)
	src := t.TempDir()
	var want []string
	for _, item := range []string{"lib1/a", "lib1/b", "lib2/c"} {
		for i, size := range []int{0, 1, 4095, 4096, 70000} {
			rel := fmt.Sprintf("%s/f%d", item, i)
			writeFile(t, filepath.Join(src, rel), randomBytes(size), 0o640, time.Unix(1600000000+int64(i), int64(i)))
			want = append(want, rel)
		}
	}
	mustTool(t, "rsync", "-a", src+"/", tm.Dir+"/")
	if err := fstest.TestFS(os.DirFS(tm.Dir), want...); err != nil {
		t.Fatal(err)
	}
}
