package main

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// dataset is the input of the workloads, generated once per harness run on
// the local disk, outside every timing, from a fixed seed.
type dataset struct {
	big     string // W1/W2: random bytes
	bigSize int64
	bigSum  [32]byte

	tar      string // W3/W4: tar archive of tarDirs top-level directories
	tarDirs  int
	tarFiles int

	rsyncSrc   string // W5: the mixed tree
	rsyncFiles int
	rsyncDirs  int
	rsyncBytes int64
}

// randReader is a fast deterministic source of incompressible bytes.
func randReader(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

// genBig writes size random bytes to path, syncs them (so that their
// writeback does not land in the first timed workload) and returns their
// SHA-256.
func genBig(path string, size int64) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Create(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(randReader(1), size)); err != nil {
		return sum, err
	}
	if err := f.Sync(); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, f.Close()
}

// genTar writes a tar archive of files files of fileSize random bytes, in
// dirs top-level directories dir00, dir01, ...: extracted with
// tar x -C ROOT/lib, every directory is an item of library lib.
func genTar(path string, dirs, files, fileSize int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	rnd := randReader(2)
	buf := make([]byte, fileSize)
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	uid, gid := os.Getuid(), os.Getgid()
	n := 0
	for d := range dirs {
		dir := fmt.Sprintf("dir%02d", d)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755,
			ModTime: mtime, Uid: uid, Gid: gid, Format: tar.FormatUSTAR}); err != nil {
			return err
		}
		per := files / dirs
		if d < files%dirs {
			per++
		}
		for range per {
			n++
			if _, err := rnd.Read(buf); err != nil {
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%s/file%05d", dir, n),
				Mode: 0o644, Size: int64(fileSize), ModTime: mtime, Uid: uid, Gid: gid, Format: tar.FormatUSTAR}); err != nil {
				return err
			}
			if _, err := tw.Write(buf); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// Odd modes and times for the rsync tree: every one must come back exactly.
var (
	fileModes = []fs.FileMode{0o644, 0o600, 0o755, 0o640, 0o444, 0o700, 0o604, 0o751, 0o400, 0o666, 0o620, 0o511}
	dirModes  = []fs.FileMode{0o755, 0o750, 0o700, 0o775, 0o711, 0o555}
)

// oddTime returns a time between 1990 and 2035 with a random nanosecond
// part.
func oddTime(r *rand.Rand) time.Time {
	lo := time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	return time.Unix(lo+r.Int64N(hi-lo), r.Int64N(1e9))
}

// genRsyncTree builds the mixed tree of W5 in dir: at most total bytes, 80 %
// in four big files (one in each of the first four directories) and 20 % in
// small files of 0..40 KiB spread over directories of ~100 files; odd
// names, modes and nanosecond mtimes on files and directories. The
// top-level directories become items of library lib.
func genRsyncTree(dir string, total int64) (files, dirs int, bytes int64, err error) {
	r := rand.New(rand.NewPCG(3, 3))
	rnd := randReader(3)
	bigSizes := []int64{total * 35 / 100, total * 25 / 100, total * 12 / 100, total * 8 / 100}
	smallBytes := total - bigSizes[0] - bigSizes[1] - bigSizes[2] - bigSizes[3]
	nSmall := int(smallBytes / (20 << 10))
	nDirs := max(4, (nSmall+99)/100)

	if err := os.Mkdir(dir, 0o755); err != nil {
		return 0, 0, 0, err
	}
	dirNames := make([]string, nDirs)
	for d := range nDirs {
		dirNames[d] = fmt.Sprintf("d%02d", d)
		if d%5 == 3 {
			dirNames[d] = fmt.Sprintf("dir %02d ä", d)
		}
		if err := os.Mkdir(filepath.Join(dir, dirNames[d]), 0o700); err != nil {
			return 0, 0, 0, err
		}
	}
	write := func(path string, size int64, mode fs.FileMode) error {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, io.LimitReader(rnd, size)); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Chmod(path, mode); err != nil {
			return err
		}
		t := oddTime(r)
		files++
		bytes += size
		return os.Chtimes(path, t, t)
	}
	for i, size := range bigSizes {
		if size <= 0 {
			continue
		}
		if err := write(filepath.Join(dir, dirNames[i%nDirs], fmt.Sprintf("big%d.bin", i)), size, fileModes[i]); err != nil {
			return 0, 0, 0, err
		}
	}
	left := smallBytes
	for i := range nSmall {
		size := r.Int64N(40 << 10)
		if i%97 == 0 {
			size = 0
		}
		size = min(size, left)
		left -= size
		name := fmt.Sprintf("f%05d", i)
		switch {
		case i%37 == 5:
			name = fmt.Sprintf(".hidden%05d", i)
		case i%23 == 7:
			name = fmt.Sprintf("with space %05d.txt", i)
		case i%53 == 11:
			name = fmt.Sprintf("ünïcødé-%05d", i)
		}
		if err := write(filepath.Join(dir, dirNames[i%nDirs], name), size, fileModes[i%len(fileModes)]); err != nil {
			return 0, 0, 0, err
		}
	}
	for d, name := range dirNames {
		p := filepath.Join(dir, name)
		if err := os.Chmod(p, dirModes[d%len(dirModes)]); err != nil {
			return 0, 0, 0, err
		}
		t := oddTime(r)
		if err := os.Chtimes(p, t, t); err != nil {
			return 0, 0, 0, err
		}
	}
	t := oddTime(r)
	return files, nDirs, bytes, os.Chtimes(dir, t, t)
}

// entryInfo is what must survive a round trip through a system.
type entryInfo struct {
	mode  fs.FileMode
	size  int64
	mtime int64 // ns
	sum   [32]byte
}

// scanTree lists root recursively by relative path ("." is root itself),
// with the SHA-256 of every regular file if content is set.
func scanTree(root string, content bool) (map[string]entryInfo, error) {
	out := map[string]entryInfo{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		e := entryInfo{mode: fi.Mode(), mtime: fi.ModTime().UnixNano()}
		if fi.Mode().IsRegular() {
			e.size = fi.Size()
			if content {
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				h := sha256.New()
				_, err = io.Copy(h, f)
				f.Close()
				if err != nil {
					return fmt.Errorf("read %s: %w", path, err)
				}
				copy(e.sum[:], h.Sum(nil))
			}
		}
		out[rel] = e
		return nil
	})
	return out, err
}

// diffTrees lists every difference of got from want: missing and extra
// names, type and mode, size, mtime and (if content) SHA-256.
func diffTrees(want, got map[string]entryInfo, content bool) []string {
	var diffs []string
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%q: missing", name))
			continue
		}
		if g.mode != w.mode {
			diffs = append(diffs, fmt.Sprintf("%q: mode %v, want %v", name, g.mode, w.mode))
		}
		if w.mode.IsRegular() && g.size != w.size {
			diffs = append(diffs, fmt.Sprintf("%q: size %d, want %d", name, g.size, w.size))
		}
		if g.mtime != w.mtime {
			diffs = append(diffs, fmt.Sprintf("%q: mtime %s, want %s", name,
				time.Unix(0, g.mtime).UTC().Format(time.RFC3339Nano), time.Unix(0, w.mtime).UTC().Format(time.RFC3339Nano)))
		}
		if content && w.mode.IsRegular() && g.size == w.size && g.sum != w.sum {
			diffs = append(diffs, fmt.Sprintf("%q: content differs (sha256 %x, want %x)", name, g.sum[:8], w.sum[:8]))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q: not in the source", name))
		}
	}
	slices.Sort(diffs)
	return diffs
}

// hashFile returns the SHA-256 of a file.
func hashFile(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("read %s: %w", path, err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
