package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestQuick is the CI smoke test of the benchmark: the harness's --quick
// mode end to end, on all three systems and all six workloads. It fails on
// a tool error, a hang, or a content/mode/mtime mismatch, never on a
// timing. It needs root, /dev/fuse, dd, tar, rsync, fio and fusermount3.
func TestQuick(t *testing.T) {
	requireTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(ctx, []string{"--quick"}, &stdout, &stderr)
	t.Logf("clfsbench --quick: exit %d in %.1f s\n%s\n%s", code, time.Since(start).Seconds(), stderr.String(), stdout.String())
	if code != 0 {
		t.Fatalf("clfsbench --quick exited %d (errors above)", code)
	}
	// Every row has a figure for every system that has it.
	table := stdout.String()
	for _, want := range []string{"W1 seq write", "W2 seq read", "W3 tar x", "W3 rm -rf", "W4 find, cold",
		"W4 ls -lR, warm", "W4 stat", "W5 rsync -a in", "W5 rsync -a again (no-op)", "W5 rsync -a --checksum out",
		"W6 fio seq write", "W6 fio seq read", "W6 fio rand read", "daemon peak RSS during W1", "daemon peak RSS during W3"} {
		if !strings.Contains(table, want) {
			t.Errorf("the table has no row %q", want)
		}
	}
	if regexp.MustCompile(`\sERR(\s|$)`).MatchString(table) {
		t.Errorf("the table has ERR cells")
	}

	// The FUSE requests per file: clfs's are counted, and are not zero,
	// in the steps issue 13 watches; the other systems have none.
	reqs := requestsTable(t, table)
	for _, step := range []string{"W3 tar x", "W3 rm -rf", "W5 rsync -a in", "W5 rsync -a again (no-op)", "W4 ls -lR, cold"} {
		cells, ok := reqs[step]
		if !ok {
			t.Errorf("no line %q in the requests table", step)
			continue
		}
		if v, err := strconv.ParseFloat(cells["clfs"], 64); err != nil || v <= 0 {
			t.Errorf("%s: clfs has %q requests per file, want a positive number", step, cells["clfs"])
		}
		if !regexp.MustCompile(`^([A-Z_]+ [0-9.]+ ?)+( …)?$`).MatchString(cells["clfs, by opcode"]) {
			t.Errorf("%s: clfs's requests by opcode read %q", step, cells["clfs, by opcode"])
		}
		for _, sys := range []string{"native", "loopback"} {
			if cells[sys] != "—" {
				t.Errorf("%s: %s has %q requests per file, want —", step, sys, cells[sys])
			}
		}
	}
	if c := reqs["W3 tar x"]["clfs, by opcode"]; !strings.Contains(c, "CREATE 1.0") {
		t.Errorf("W3 tar x: clfs's requests by opcode %q have no CREATE 1.0 (one per file)", c)
	}
}

// requestsTable parses the report's table of FUSE requests per file: its
// lines by the start of their label, each a map column → cell. Columns
// are two spaces or more apart.
func requestsTable(t *testing.T, report string) map[string]map[string]string {
	t.Helper()
	_, section, ok := strings.Cut(report, "\nFUSE requests per file")
	if !ok {
		t.Fatalf("no table of FUSE requests per file in the report")
	}
	lines := strings.Split(section, "\n")
	sep := regexp.MustCompile(`\s{2,}`)
	var header []string
	rows := map[string]map[string]string{}
	for i, line := range lines {
		if strings.HasPrefix(line, "workload ") {
			header = sep.Split(line, -1)
			lines = lines[i+2:] // the header and its rule
			break
		}
	}
	for _, line := range lines {
		if strings.TrimSpace(line) == "" {
			break
		}
		cells := sep.Split(line, -1)
		if len(cells) != len(header) {
			t.Fatalf("requests table: %d cells in %q, want %d as in %q", len(cells), line, len(header), header)
		}
		row := map[string]string{}
		for i, c := range cells {
			row[header[i]] = c
		}
		for _, step := range []string{"W3 tar x", "W3 rm -rf", "W4 ls -lR, cold", "W5 rsync -a in", "W5 rsync -a again (no-op)"} {
			if strings.HasPrefix(cells[0], step) {
				rows[step] = row
			}
		}
	}
	return rows
}

func requireTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("clfsbench needs root (drop_caches, FUSE passthrough): run the tests as root, as CI does")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("no /dev/fuse: %v", err)
	}
	for _, tool := range []string{"dd", "tar", "rsync", "fio", "fusermount3", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (CI: apt-get install rsync fio fuse3): %v", tool, err)
		}
	}
}

// The round-trip check must see every kind of difference W5 promises to
// catch: content, mode, mtime, missing and extra names.
func TestDiffTreesCatchesMismatches(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if _, _, _, err := genRsyncTree(src, 1<<20); err != nil {
		t.Fatal(err)
	}
	want, err := scanTree(src, true)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(dir, "copy")
	if out, err := exec.Command("cp", "-a", src, cp).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	got, err := scanTree(cp, true)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(want, got, true); len(d) != 0 {
		t.Fatalf("an exact copy differs: %v", d)
	}

	big := filepath.Join(cp, "d00", "big0.bin")
	fi, err := os.Stat(big)
	if err != nil {
		t.Fatal(err)
	}
	// Same size and mtime, one byte changed: only the content differs.
	f, err := os.OpenFile(big, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{'x'}, 100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(big, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(cp, "d01"), 0o700|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(cp, "d02", "big2.bin"), time.Unix(1, 1), time.Unix(1, 1)); err != nil {
		t.Fatal(err)
	}
	d00, err := os.Stat(filepath.Join(cp, "d00"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(cp, "d00", "f00000"), filepath.Join(cp, "d00", "renamed")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(cp, "d00"), d00.ModTime(), d00.ModTime()); err != nil {
		t.Fatal(err)
	}
	got, err = scanTree(cp, true)
	if err != nil {
		t.Fatal(err)
	}
	diffs := diffTrees(want, got, true)
	for _, w := range []string{`"d00/big0.bin": content differs`, `"d01": mode`, `"d02/big2.bin": mtime`,
		`"d00/f00000": missing`, `"d00/renamed": not in the source`} {
		found := false
		for _, d := range diffs {
			found = found || strings.HasPrefix(d, w)
		}
		if !found {
			t.Errorf("no difference %s… in %q", w, diffs)
		}
	}
	if t.Failed() {
		return
	}
	if err := mismatch("test", diffs); !strings.Contains(err.Error(), "5 differences") {
		t.Errorf("mismatch() = %v", err)
	}
}
