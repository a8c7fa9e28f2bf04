package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// metric is one row of the table.
type metric struct {
	key      string
	workload string // W1..W6: the row is measured when it is selected
	label    string // may contain %s for a size, filled in by labelOf
	unit     string
	higher   bool // higher is better
	daemon   bool // only systems with a daemon have it
}

var metrics = []metric{
	{"w1_write", "W1", "W1 seq write %s (dd bs=1M conv=fsync)", "MiB/s", true, false},
	{"w2_read", "W2", "W2 seq read %s, cold (dd bs=1M)", "MiB/s", true, false},
	{"w3_tar", "W3", "W3 tar x %s", "files/s", true, false},
	{"w3_rm", "W3", "W3 rm -rf of them", "files/s", true, false},
	{"w4_find_cold", "W4", "W4 find, cold", "entries/s", true, false},
	{"w4_find_warm", "W4", "W4 find, warm", "entries/s", true, false},
	{"w4_ls_cold", "W4", "W4 ls -lR, cold", "entries/s", true, false},
	{"w4_ls_warm", "W4", "W4 ls -lR, warm", "entries/s", true, false},
	{"w4_stat_cold", "W4", "W4 stat (lstat walk), cold", "entries/s", true, false},
	{"w4_stat_warm", "W4", "W4 stat (lstat walk), warm", "entries/s", true, false},
	{"w5_in", "W5", "W5 rsync -a in, %s tree", "s", false, false},
	{"w5_noop", "W5", "W5 rsync -a again (no-op)", "s", false, false},
	{"w5_out", "W5", "W5 rsync -a --checksum out", "s", false, false},
	{"w6_write", "W6", "W6 fio seq write 1M, %s", "MiB/s", true, false},
	{"w6_write_wall", "W6", "W6 same, wall clock of fio (incl. close)", "MiB/s", true, false},
	{"w6_read", "W6", "W6 fio seq read 1M, cold", "MiB/s", true, false},
	{"w6_randread", "W6", "W6 fio rand read 4k, cold, %s", "IOPS", true, false},
	{"rss_w1", "W1", "daemon peak RSS during W1", "MiB", false, true},
	{"rss_w3", "W3", "daemon peak RSS during W3", "MiB", false, true},
}

func (h *harness) labelOf(m metric) string {
	if !strings.Contains(m.label, "%s") {
		return m.label
	}
	var arg string
	switch m.key {
	case "w1_write", "w2_read":
		arg = sizeString(h.cfg.bigSize)
	case "w3_tar":
		arg = fmt.Sprintf("%d x %s in %d dirs", h.cfg.tarFiles, sizeString(int64(h.cfg.tarFileSize)), h.cfg.tarDirs)
	case "w5_in":
		arg = sizeString(h.data.rsyncBytes)
	case "w6_write":
		arg = sizeString(h.cfg.fioSize)
	case "w6_randread":
		arg = sizeString(h.cfg.fioRandIO)
	}
	return fmt.Sprintf(m.label, arg)
}

// recorder stores one measurement of the instance being run.
type recorder func(key string, value float64)

// phase is a group of workloads that share their data, run on one fresh
// instance of a system.
type phase struct {
	name      string
	workloads []string
	run       func(h *harness, in *instance, rec recorder) error
}

var phases = []phase{
	{"big", []string{"W1", "W2"}, (*harness).phaseBig},
	{"small", []string{"W3", "W4"}, (*harness).phaseSmall},
	{"rsync", []string{"W5"}, (*harness).phaseRsync},
	{"fio", []string{"W6"}, (*harness).phaseFio},
}

const mib = 1 << 20

// phaseBig: W1 writes the random file with dd conv=fsync, W2 reads it back
// after dropping the caches; then (untimed) its SHA-256 must be the
// source's.
func (h *harness) phaseBig(in *instance, rec recorder) error {
	item := filepath.Join(in.root, "lib", "item")
	if err := os.MkdirAll(item, 0o755); err != nil {
		return err
	}
	// The source comes from the page cache, not the disk: W1 measures
	// the destination only.
	if err := readAll(h.data.big); err != nil {
		return err
	}
	dst := filepath.Join(item, "big")
	var d time.Duration
	var peak float64
	err := h.counted(in, "w1_write", 1, func() (err error) {
		rss := startRSS(in.pid)
		d, err = h.runTool(nil, "dd", "if="+h.data.big, "of="+dst, "bs=1M", "conv=fsync")
		peak = rss.Stop()
		return err
	})
	if err != nil {
		return err
	}
	if h.cfg.want["W1"] {
		rec("w1_write", float64(h.data.bigSize)/mib/d.Seconds())
		if in.pid != 0 {
			rec("rss_w1", peak)
		}
	}
	if fi, err := os.Lstat(dst); err != nil {
		return err
	} else if fi.Size() != h.data.bigSize {
		return fmt.Errorf("%s: size %d after dd, want %d", dst, fi.Size(), h.data.bigSize)
	}
	if err := dropCaches(); err != nil {
		return err
	}
	err = h.counted(in, "w2_read", 1, func() (err error) {
		d, err = h.runTool(nil, "dd", "if="+dst, "of=/dev/null", "bs=1M")
		return err
	})
	if err != nil {
		return err
	}
	if h.cfg.want["W2"] {
		rec("w2_read", float64(h.data.bigSize)/mib/d.Seconds())
	}
	sum, err := hashFile(dst)
	if err != nil {
		return err
	}
	if sum != h.data.bigSum {
		return fmt.Errorf("%s: content differs from what dd wrote (sha256 %x, want %x)", dst, sum[:8], h.data.bigSum[:8])
	}
	return nil
}

// phaseSmall: W3 extracts the tar archive into ROOT/lib (its directories
// become items), W4 lists and stats the tree cold and warm, W3 removes it.
func (h *harness) phaseSmall(in *instance, rec recorder) error {
	lib := filepath.Join(in.root, "lib")
	if err := os.Mkdir(lib, 0o755); err != nil {
		return err
	}
	files := float64(h.data.tarFiles)
	wantEntries := 1 + h.data.tarDirs + h.data.tarFiles
	var d time.Duration
	var peak float64
	err := h.counted(in, "w3_tar", h.data.tarFiles, func() (err error) {
		rss := startRSS(in.pid)
		d, err = h.runTool(nil, "tar", "-x", "-f", h.data.tar, "-C", lib)
		peak = rss.Stop()
		return err
	})
	if err != nil {
		return err
	}
	if h.cfg.want["W3"] {
		rec("w3_tar", files/d.Seconds())
	}

	// find's count checks the extraction (on every system, W4 or not).
	find := func(key string) error {
		out, d, err := h.output("find", lib)
		if err != nil {
			return err
		}
		n := bytes.Count(out, []byte("\n"))
		if n != wantEntries {
			return fmt.Errorf("find %s: %d entries after tar x, want %d", lib, n, wantEntries)
		}
		if key != "" {
			rec(key, float64(n)/d.Seconds())
		}
		return nil
	}
	if !h.cfg.want["W4"] {
		if err := find(""); err != nil {
			return err
		}
	} else {
		steps := []struct {
			key  string
			cold bool
			run  func(key string) error
		}{
			{"w4_find_cold", true, find},
			{"w4_find_warm", false, find},
			{"w4_ls_cold", true, func(key string) error {
				d, err := h.runTool(nil, "ls", "-lR", lib)
				if err == nil {
					rec(key, float64(wantEntries)/d.Seconds())
				}
				return err
			}},
			{"w4_ls_warm", false, nil},
			{"w4_stat_cold", true, func(key string) error {
				start := time.Now()
				n, err := h.lstatWalk(lib)
				d := time.Since(start)
				if err != nil {
					return err
				}
				if n != wantEntries {
					return fmt.Errorf("lstat walk of %s: %d entries, want %d", lib, n, wantEntries)
				}
				rec(key, float64(n)/d.Seconds())
				return nil
			}},
			{"w4_stat_warm", false, nil},
		}
		for i, s := range steps {
			if s.run == nil {
				s.run = steps[i-1].run // warm: the same again
			}
			if s.cold {
				if err := dropCaches(); err != nil {
					return err
				}
			}
			if err := h.counted(in, s.key, wantEntries, func() error { return s.run(s.key) }); err != nil {
				return err
			}
		}
	}

	err = h.counted(in, "w3_rm", h.data.tarFiles, func() (err error) {
		rss := startRSS(in.pid)
		d, err = h.runTool(nil, "rm", "-rf", lib)
		peak = max(peak, rss.Stop())
		return err
	})
	if err != nil {
		return err
	}
	if h.cfg.want["W3"] {
		rec("w3_rm", files/d.Seconds())
		if in.pid != 0 {
			rec("rss_w3", peak)
		}
	}
	if _, err := os.Lstat(lib); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s still there after rm -rf (lstat: %v)", lib, err)
	}
	return nil
}

// lstatWalk lstats every entry under root (readdir + lstat, as find -exec
// stat does without its process overhead) and checks every file's size.
func (h *harness) lstatWalk(root string) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() && fi.Size() != int64(h.cfg.tarFileSize) {
			return fmt.Errorf("%s: size %d, want %d", path, fi.Size(), h.cfg.tarFileSize)
		}
		n++
		return nil
	})
	return n, err
}

// phaseRsync: W5 copies the mixed tree in with rsync -a, runs it again
// (which must transfer and change nothing), and copies it back out with
// rsync -a --checksum; content, modes and mtimes must come back exactly.
func (h *harness) phaseRsync(in *instance, rec recorder) error {
	lib := filepath.Join(in.root, "lib")
	if err := os.Mkdir(lib, 0o755); err != nil {
		return err
	}
	src := h.data.rsyncSrc + "/"
	files := h.data.rsyncFiles
	var d time.Duration
	err := h.counted(in, "w5_in", files, func() (err error) {
		d, err = h.runTool(nil, "rsync", "-a", src, lib+"/")
		return err
	})
	if err != nil {
		return err
	}
	rec("w5_in", d.Seconds())
	got, err := scanTree(lib, false)
	if err != nil {
		return err
	}
	if diffs := diffTrees(h.srcTree, got, false); len(diffs) > 0 {
		return mismatch("after rsync -a in, "+lib+" differs from the source", diffs)
	}

	var out []byte
	err = h.counted(in, "w5_noop", files, func() (err error) {
		out, d, err = h.output("rsync", "-a", "-i", src, lib+"/")
		return err
	})
	if err != nil {
		return err
	}
	rec("w5_noop", d.Seconds())
	if s := strings.TrimSpace(string(out)); s != "" {
		return mismatch("the second rsync -a was not a no-op; it changed", strings.Split(s, "\n"))
	}

	back := filepath.Join(in.base, "out")
	err = h.counted(in, "w5_out", files, func() (err error) {
		d, err = h.runTool(nil, "rsync", "-a", "--checksum", lib+"/", back+"/")
		return err
	})
	if err != nil {
		return err
	}
	rec("w5_out", d.Seconds())
	got, err = scanTree(back, true)
	if err != nil {
		return err
	}
	if diffs := diffTrees(h.srcTree, got, true); len(diffs) > 0 {
		return mismatch("MISMATCH: the tree copied back out with rsync -a --checksum differs from the source", diffs)
	}
	return os.RemoveAll(back)
}

func mismatch(what string, diffs []string) error {
	const show = 20
	msg := fmt.Sprintf("%s (%d differences):", what, len(diffs))
	for i, d := range diffs {
		if i == show {
			msg += fmt.Sprintf("\n      ... and %d more", len(diffs)-show)
			break
		}
		msg += "\n      " + d
	}
	return errors.New(msg)
}

// fioResult is the part of fio's JSON output the harness reads.
type fioResult struct {
	Jobs []struct {
		Jobname string `json:"jobname"`
		Error   int    `json:"error"`
		Read    fioDir `json:"read"`
		Write   fioDir `json:"write"`
	} `json:"jobs"`
}

type fioDir struct {
	IOBytes int64   `json:"io_bytes"`
	BWBytes float64 `json:"bw_bytes"`
	IOPS    float64 `json:"iops"`
}

// phaseFio: W6 runs fio's sequential 1 MiB write, then (caches dropped)
// sequential 1 MiB read and 4 KiB random read of the same file.
func (h *harness) phaseFio(in *instance, rec recorder) error {
	item := filepath.Join(in.root, "lib", "item")
	if err := os.MkdirAll(item, 0o755); err != nil {
		return err
	}
	size := strconv.FormatInt(h.cfg.fioSize, 10)
	jobs := []struct {
		name, rw, bs string
		extra        []string
	}{
		{"seqwrite", "write", "1M", nil},
		{"seqread", "read", "1M", nil},
		{"randread", "randread", "4k", []string{"--io_size=" + strconv.FormatInt(h.cfg.fioRandIO, 10)}},
	}
	for _, j := range jobs {
		if j.rw != "write" {
			if err := dropCaches(); err != nil {
				return err
			}
		}
		args := append([]string{"--name=" + j.name, "--directory=" + item, "--filename=fio.dat",
			"--rw=" + j.rw, "--bs=" + j.bs, "--size=" + size, "--direct=0", "--end_fsync=1",
			"--output-format=json"}, j.extra...)
		var out []byte
		var wall time.Duration
		err := h.counted(in, "w6_"+strings.TrimPrefix(j.name, "seq"), 1, func() (err error) {
			out, wall, err = h.output("fio", args...)
			return err
		})
		if err != nil {
			return err
		}
		res, err := parseFio(out)
		if err != nil {
			return fmt.Errorf("fio %s: %w", j.name, err)
		}
		switch j.rw {
		case "write":
			if res.Write.IOBytes != h.cfg.fioSize {
				return fmt.Errorf("fio %s wrote %d bytes, want %d", j.name, res.Write.IOBytes, h.cfg.fioSize)
			}
			rec("w6_write", res.Write.BWBytes/mib)
			// fio's figure stops at its end_fsync; clfs commits (hash,
			// sync, catalog) at close, which only the wall clock sees.
			rec("w6_write_wall", float64(h.cfg.fioSize)/mib/wall.Seconds())
		case "read":
			if res.Read.IOBytes != h.cfg.fioSize {
				return fmt.Errorf("fio %s read %d bytes, want %d", j.name, res.Read.IOBytes, h.cfg.fioSize)
			}
			rec("w6_read", res.Read.BWBytes/mib)
		case "randread":
			if res.Read.IOBytes == 0 {
				return fmt.Errorf("fio %s read nothing", j.name)
			}
			rec("w6_randread", res.Read.IOPS)
		}
	}
	return nil
}

// parseFio reads fio's JSON (after any warning lines fio prints first) and
// checks that its one job reported no error.
func parseFio(out []byte) (*struct {
	Read, Write fioDir
}, error) {
	i := bytes.IndexByte(out, '{')
	if i < 0 {
		return nil, fmt.Errorf("no JSON in its output: %q", truncate(string(out), 500))
	}
	var r fioResult
	if err := json.Unmarshal(out[i:], &r); err != nil {
		return nil, fmt.Errorf("parse its JSON: %w", err)
	}
	if len(r.Jobs) != 1 {
		return nil, fmt.Errorf("%d jobs in its JSON, want 1", len(r.Jobs))
	}
	if r.Jobs[0].Error != 0 {
		return nil, fmt.Errorf("job error %d", r.Jobs[0].Error)
	}
	return &struct{ Read, Write fioDir }{r.Jobs[0].Read, r.Jobs[0].Write}, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func readAll(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}
