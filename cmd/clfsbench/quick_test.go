package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
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

// A peer is any command that mounts $MNT in the foreground: here the clfs
// binary itself, built by the test. The harness mounts it afresh for each
// phase, runs the same workloads there as on the other systems and
// compares them, and afterwards the command's process is gone and its
// mount point unmounted. A peer has no request counters.
func TestQuickPeer(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	clfs := filepath.Join(dir, "clfs")
	if out, err := exec.Command("go", "build", "-o", clfs, "clfs/cmd/clfs").CombinedOutput(); err != nil {
		t.Fatalf("go build clfs: %v\n%s", err, out)
	}
	started := filepath.Join(dir, "started")
	// $$ is the shell's PID, which exec hands to clfs.
	mountCmd := fmt.Sprintf(`echo "$$ $MNT" >> %s && exec %s --home "$BACKING/home" mount "$MNT"`, started, clfs)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"--quick", "--json", "--systems", "clfs", "--clfs", clfs, "--workloads", "W3,W5",
		"--peer", "twin=" + mountCmd}, &stdout, &stderr)
	t.Logf("clfsbench: exit %d\n%s", code, stderr.String())
	if code != 0 {
		t.Fatalf("clfsbench with a peer exited %d (errors above)", code)
	}

	var report struct {
		Machine struct{ Peers []peer }
		Rows    []row
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("the JSON report: %v\n%s", err, stdout.String())
	}
	if len(report.Machine.Peers) != 1 || report.Machine.Peers[0] != (peer{"twin", mountCmd}) {
		t.Errorf("the report's peers: %+v", report.Machine.Peers)
	}
	seen := map[string]bool{}
	for _, r := range report.Rows {
		seen[r.Key] = true
		if _, ok := r.Median["twin"]; !ok {
			t.Errorf("%s: no figure for the peer: %v", r.Key, r.Median)
		}
		if _, ok := r.ClfsOverPeer["twin"]; !ok {
			t.Errorf("%s: no ratio clfs/twin", r.Key)
		}
		if r.Key == "rss_w3" {
			continue
		}
		if f, ok := r.Requests[sysClfs]; !ok || f.Total <= 0 {
			t.Errorf("%s: clfs's requests per file: %+v", r.Key, r.Requests)
		}
		if _, ok := r.Requests["twin"]; ok {
			t.Errorf("%s: the peer has requests per file, from counters it has not", r.Key)
		}
	}
	for _, key := range []string{"w3_tar", "w3_rm", "w5_in", "w5_noop", "w5_out"} {
		if !seen[key] {
			t.Errorf("no row %s in the report", key)
		}
	}

	// One mount per phase (small, rsync), each stopped afterwards.
	data, err := os.ReadFile(started)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		t.Errorf("the peer's command started %d times, want 2 (one per phase):\n%s", len(lines), data)
	}
	for _, line := range lines {
		pidStr, mnt, _ := strings.Cut(line, " ")
		pid, err := strconv.Atoi(pidStr)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("the peer's process %d is still there after the run (kill 0: %v)", pid, err)
		}
		if mountinfoHas(mnt) {
			t.Errorf("%s is still mounted after the run", mnt)
		}
	}
}

// A peer that cannot mount fails its phases with a message that says why,
// with the command's stderr: one that exits, one that does not mount in
// time (and is stopped). The other systems still run; the exit is 1.
func TestPeerThatDoesNotMount(t *testing.T) {
	requireTools(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"--quick", "--systems", "native", "--workloads", "W3", "--mount-timeout", "1s",
		"--peer", "quits=echo no such filesystem >&2; exit 3",
		"--peer", "stalls=echo $$ > " + pidFile + "; echo still thinking >&2; exec sleep 600"}, &stdout, &stderr)
	t.Logf("clfsbench: exit %d\n%s\n%s", code, stderr.String(), stdout.String())
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"peer quits: the mount command exited (exit status 3) before",
		"no such filesystem",
		"peer stalls did not mount",
		"within 1s",
		"still thinking",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr has no %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^W3 tar x.*\s[0-9.]+\s+-\s+-\s+ERR\s+ERR\s`).MatchString(stdout.String()) {
		t.Errorf("the table's W3 tar x line is not native's figure, - for loopback and clfs, then ERR for both peers")
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the stalled peer's process %d is still there (kill 0: %v)", pid, err)
	}
}

// Bad --peer values are refused before anything runs, with a message
// naming the problem, and exit 2.
func TestPeerFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--peer", "juicefs"}, "no ="},
		{[]string{"--peer", "=juicefs mount x $MNT"}, "empty name"},
		{[]string{"--peer", "a=x", "--peer", "a=y"}, `"a" given twice`},
		{[]string{"--peer", "clfs=x"}, "built-in"},
		{[]string{"--peer", "a/b=x"}, "letters, digits"},
		{[]string{"--peer", "a="}, "empty mount command"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, &stdout, &stderr)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", c.args, code)
		}
		if !strings.Contains(stderr.String(), "clfsbench: ") || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: stderr has no clfsbench: …%s…:\n%s", c.args, c.want, stderr.String())
		}
	}
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
