package main

// The crash suite: a real `clfs mount` daemon, started as a child process,
// is killed with SIGKILL at random moments while real programs (cp, rsync,
// a shell's >>, cp + mv over) write and readers read; after each kill it is
// started again and the home is checked against a model of what every
// writer was told: guarantees 1, 2 and 3 of ARCHITECTURE.md.
//
//	go test -race -count=1 -run TestCrash ./cmd/clfs/                       # CI: 20 rounds
//	go test -count=1 -run TestCrash ./cmd/clfs/ -crash.rounds=500 -timeout 2h  # long mode
//	go test -count=1 -run TestCrash ./cmd/clfs/ -crash.seed=N               # replay a seed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"clfs/sessionmgr"
)

var (
	crashRounds  = flag.Int("crash.rounds", 20, "rounds of kill -9 in TestCrashKill9Randomized")
	crashSeed    = flag.Uint64("crash.seed", 0, "seed of TestCrashKill9Randomized (0: from the clock; the seed is printed)")
	crashWriters = flag.Int("crash.writers", 4, "concurrent writers in TestCrashKill9Randomized")
	crashMaxKB   = flag.Int("crash.maxkb", 2048, "largest file a writer writes, in KiB")
)

// buildClfs builds the clfs binary for tests that need a separate process.
func buildClfs(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "clfs")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer is a bytes.Buffer a child process writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemon is a `clfs mount` child process.
type daemon struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	conn uint32 // the FUSE connection's number in /sys/fs/fuse/connections
}

func startDaemon(t *testing.T, bin, home, mnt string, extra ...string) *daemon {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("the crash suite mounts for real and needs /dev/fuse (root, or a container with --device /dev/fuse): %v", err)
	}
	d := &daemon{log: &syncBuffer{}}
	d.cmd = exec.Command(bin, append([]string{"--home", home, "mount", mnt}, extra...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// "mounted" is logged once the mount and the control socket are up:
	// the CLI must find the socket, not open the catalog the daemon holds.
	for i := 0; !isMountpoint(mnt) || !strings.Contains(d.log.String(), "msg=mounted"); i++ {
		if i == 400 {
			d.cmd.Process.Kill()
			d.cmd.Wait()
			t.Fatalf("clfs mount did not come up:\n%s", d.log)
		}
		time.Sleep(25 * time.Millisecond)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(mnt, &st); err == nil {
		d.conn = uint32(st.Dev&0xff | (st.Dev>>12)&0xffffff00) // minor(st_dev)
	}
	// A test that fails half way must not leave a daemon behind.
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Signal(syscall.SIGKILL)
			d.abortConn(t)
			d.cmd.Wait()
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	return d
}

// abortConn aborts the daemon's FUSE connection, as an administrator
// would with echo 1 > /sys/fs/fuse/connections/N/abort: requests in
// flight fail with ENOTCONN.
func (d *daemon) abortConn(t *testing.T) {
	const ctl = "/sys/fs/fuse/connections"
	if _, err := os.Stat(filepath.Join(ctl, fmt.Sprint(d.conn))); err != nil {
		exec.Command("mount", "-t", "fusectl", "none", ctl).Run()
	}
	if err := os.WriteFile(filepath.Join(ctl, fmt.Sprint(d.conn), "abort"), []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Logf("abort FUSE connection %d: %v", d.conn, err)
	}
}

// kill9 kills the daemon as a crash would and clears the stale mount;
// with checkStale, it first checks that a new mount there is refused with
// a useful line.
func (d *daemon) kill9(t *testing.T, bin, mnt string, checkStale bool) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGKILL)
	exited := make(chan struct{})
	go func() { d.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		// A thread of the daemon sleeps uninterruptibly in the kernel, so
		// the process cannot exit, the FUSE device stays open, and every
		// process waiting on the mount hangs with it.
		t.Errorf("clfs mount did not exit within 10s of SIGKILL (a thread stuck in the kernel: %s); aborting its FUSE connection", threadStates(d.cmd.Process.Pid))
		d.abortConn(t)
		<-exited
	}
	if checkStale {
		out, err := exec.Command(bin, "mount", mnt).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "stale mount") || !strings.Contains(string(out), "fusermount3 -u") {
			t.Errorf("clfs mount on the stale mountpoint: %v: %s; want a line about the stale mount", err, out)
		}
	}
	if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
		t.Fatalf("clear stale mount: %v\n%s", err, out)
	}
	if strings.Contains(d.log.String(), "panic") {
		t.Fatalf("daemon log shows a panic:\n%s", d.log)
	}
}

// threadStates lists the kernel wait channel of each thread of a process
// that is not running.
func threadStates(pid int) string {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	var out []string
	for _, task := range tasks {
		if w, err := os.ReadFile(filepath.Join(task, "wchan")); err == nil && len(w) > 0 && string(w) != "0" {
			out = append(out, string(w))
		}
	}
	return strings.Join(out, ", ")
}

func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("clfs mount after SIGTERM: %v\n%s", err, d.log)
	}
	if strings.Contains(d.log.String(), "panic") {
		t.Fatalf("daemon log shows a panic:\n%s", d.log)
	}
}

// clfsJSON runs a clfs command in this process (through the daemon's
// control socket) and decodes its --json output into v.
func clfsJSON(t *testing.T, home string, v any, args ...string) {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append(append([]string{"clfs", "--home", home}, args...), "--json")
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("%v: %v\n%s%s", args[3:], err, out.String(), errOut.String())
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		t.Fatalf("%v: %v\n%s", args[3:], err, out.String())
	}
}

// TestKill9AfterCloseKeepsTheFile is the crash suite's fixed case: a file
// whose close(2) returned 0 survives kill -9 right after; a file being
// written when the daemon dies is not visible at all; the restarted daemon
// is clean (fsck, no ACTIVE session, no staging).
func TestKill9AfterCloseKeepsTheFile(t *testing.T) {
	bin := buildClfs(t)
	home, mnt := t.TempDir(), filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	want := map[string][]byte{}
	d := startDaemon(t, bin, home, mnt)
	for round := 0; round < 3; round++ {
		item := filepath.Join(mnt, "lib", "item")
		if err := os.MkdirAll(item, 0o755); err != nil {
			t.Fatal(err)
		}
		name := "closed-" + string(rune('a'+round)) + ".bin"
		data := make([]byte, (round+1)<<20+round)
		for i := range data {
			data[i] = byte(i*7 + round)
		}
		if err := os.WriteFile(filepath.Join(item, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = data
		// A second file is half written when the daemon dies.
		f, err := os.Create(filepath.Join(item, "open.bin"))
		if err != nil {
			t.Fatal(err)
		}
		f.Write(data[:len(data)/2])
		d.kill9(t, bin, mnt, round == 0)
		f.Close()

		d = startDaemon(t, bin, home, mnt)
		checkRestartedHome(t, home, fmt.Sprintf("round %d", round))
		for n, w := range want {
			got, err := os.ReadFile(filepath.Join(item, n))
			if err != nil || !bytes.Equal(got, w) {
				t.Fatalf("round %d: %s after kill -9: %v (%d bytes, want %d)", round, n, err, len(got), len(w))
			}
		}
		if _, err := os.Stat(filepath.Join(item, "open.bin")); !os.IsNotExist(err) {
			t.Fatalf("round %d: the file being written when the daemon died is visible: %v", round, err)
		}
	}
	d.stop(t)
}

// checkRestartedHome checks what guarantee 3 promises of a home whose
// daemon was killed and started again, before anything reads it: fsck is
// clean, no session is ACTIVE (the dead mount's are ERROR), no staging is
// left, and the blobs on disk are exactly the committed files' content.
// It returns the committed files by LIB/ITEM/FILE.
func checkRestartedHome(t *testing.T, home, when string) map[string]apiFile {
	t.Helper()
	var sessions []struct{ ID, State, Type string }
	clfsJSON(t, home, &sessions, "session", "ls")
	for _, s := range sessions {
		if s.State == "ACTIVE" {
			t.Errorf("%s: %s session %s still ACTIVE after the restart", when, s.Type, s.ID)
		}
	}
	var rep struct {
		Files    int `json:"files_checked"`
		Problems []struct{ File, Path, Message string }
	}
	var out, errOut bytes.Buffer
	ferr := run(context.Background(), []string{"clfs", "--home", home, "fsck", "--json"}, &out, &errOut)
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || ferr != nil || len(rep.Problems) != 0 {
		t.Fatalf("%s: fsck after kill -9: %v %v\n%s%s", when, ferr, err, out.String(), errOut.String())
	}
	staged, _ := filepath.Glob(filepath.Join(home, "storage", "staging", "*", "*"))
	if len(staged) != 0 {
		t.Errorf("%s: staging left after restart: %v", when, staged)
	}
	files := committedFiles(t, home)
	if len(files) != rep.Files {
		t.Errorf("%s: fsck checked %d files, the libraries list %d", when, rep.Files, len(files))
	}
	// Small files are stored inline in the catalog (fsck, clean above,
	// hashed them); larger ones must have their blob on disk. A blob
	// file of a small one may exist too: a storage URI wrote it out.
	want, onDisk := map[string]bool{}, map[string]bool{}
	for _, f := range files {
		want[f.ChecksumInfo.Checksum] = true
		if f.Size > sessionmgr.DefaultInlineLimit {
			onDisk[f.ChecksumInfo.Checksum] = true
		}
	}
	blobs, _ := filepath.Glob(filepath.Join(home, "storage", "content", "*", "*"))
	have := map[string]bool{}
	for _, b := range blobs {
		have[filepath.Base(b)] = true
	}
	for sha := range have {
		if !want[sha] {
			t.Errorf("%s: unreferenced content left on disk: %s", when, sha)
		}
	}
	for sha := range onDisk {
		if !have[sha] {
			t.Errorf("%s: committed content missing on disk: %s", when, sha)
		}
	}
	return files
}

type apiFile struct {
	Name         string
	Size         int64
	ChecksumInfo struct{ Checksum string } `json:"checksum_info"`
}

// committedFiles lists every committed file of the home through the CLI.
func committedFiles(t *testing.T, home string) map[string]apiFile {
	t.Helper()
	var libs []struct{ Name string }
	clfsJSON(t, home, &libs, "library", "ls")
	out := map[string]apiFile{}
	for _, l := range libs {
		var items []struct{ Name string }
		clfsJSON(t, home, &items, "item", "ls", l.Name)
		for _, it := range items {
			var files []apiFile
			clfsJSON(t, home, &files, "file", "ls", l.Name+"/"+it.Name)
			for _, f := range files {
				out[l.Name+"/"+it.Name+"/"+f.Name] = f
			}
		}
	}
	return out
}

// ---- the randomized driver

// crashModel is what the writers were told. A file's state is its
// content's SHA-256 ("" for no file); allowed holds the states the file
// may be in after a kill: exactly one once the last change to it returned
// success, two while a change is in flight.
type crashModel struct {
	mu       sync.Mutex
	allowed  map[string][]string // GUARDED_BY(mu); by LIB/ITEM/FILE
	temps    map[string]string   // GUARDED_BY(mu); temp name prefix (LIB/ITEM/.x) → the content its writer put there
	contents map[string][]byte   // GUARDED_BY(mu); every content ever written, by SHA-256
	stats    crashStats          // GUARDED_BY(mu)
}

type crashStats struct {
	ops, opsOK, reads, readsOK, filesChecked, tempsFound, inFlightNew, releaseCommits int
}

func shaOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (m *crashModel) remember(b []byte) string {
	sha := shaOf(b)
	m.mu.Lock()
	if _, ok := m.contents[sha]; !ok {
		m.contents[sha] = append([]byte(nil), b...)
	}
	m.mu.Unlock()
	return sha
}

// begin records a change of name to sha that is about to start.
func (m *crashModel) begin(name, sha string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.allowed[name] = append(m.allowed[name], sha)
	m.stats.ops++
}

// done records that the change of name to sha returned success.
func (m *crashModel) done(name, sha string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.allowed[name] = []string{sha}
	m.stats.opsOK++
}

func (m *crashModel) content(sha string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.contents[sha]
	return b, ok
}

// crashWriter is one writer: it owns a few names of one item and changes
// them one after another with real programs.
type crashWriter struct {
	id    int
	item  string // LIB/ITEM
	names []string
	cur   map[string][]byte // the content it knows each name has (nil: none)
}

// errKilled marks a failure after the daemon was killed: expected.
var errKilled = errors.New("daemon killed")

func TestCrashKill9Randomized(t *testing.T) {
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("crash suite seed %d: replay with -crash.seed=%d (rounds %d, writers %d)", seed, seed, *crashRounds, *crashWriters)
	defer func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d: replay with go test -run TestCrashKill9Randomized ./cmd/clfs/ -crash.seed=%d", seed, seed)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	bin := buildClfs(t)
	home, mnt := t.TempDir(), filepath.Join(t.TempDir(), "mnt")
	scratch := t.TempDir()
	os.Mkdir(mnt, 0o755)

	model := &crashModel{allowed: map[string][]string{}, temps: map[string]string{}, contents: map[string][]byte{}}
	model.remember(nil)
	items := []string{"lib/a", "lib/b"}
	var writers []*crashWriter
	for w := 0; w < *crashWriters; w++ {
		cw := &crashWriter{id: w, item: items[w%len(items)], cur: map[string][]byte{}}
		for k := 0; k < 2; k++ {
			name := fmt.Sprintf("w%d-f%d", w, k)
			cw.names = append(cw.names, name)
			model.allowed[cw.item+"/"+name] = []string{""}
		}
		writers = append(writers, cw)
	}

	d := startDaemon(t, bin, home, mnt)
	for _, it := range items {
		if err := os.MkdirAll(filepath.Join(mnt, it), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	survived := 0
	for round := 0; round < *crashRounds && !t.Failed(); round++ {
		var killed atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for _, cw := range writers {
			wrng := rand.New(rand.NewPCG(seed, uint64(round*1000+cw.id)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !killed.Load() {
					if err := cw.step(wrng, model, mnt, scratch, &killed); err != nil {
						if !errors.Is(err, errKilled) {
							errs <- fmt.Errorf("round %d writer %d: %w", round, cw.id, err)
						}
						return
					}
				}
			}()
		}
		for r := 0; r < 2; r++ {
			rrng := rand.New(rand.NewPCG(seed, uint64(round*1000+500+r)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !killed.Load() {
					if err := crashRead(rrng, model, mnt, items, &killed); err != nil {
						errs <- fmt.Errorf("round %d reader %d: %w", round, r, err)
						return
					}
				}
			}()
		}
		delay := time.Duration(20+rng.IntN(1200)) * time.Millisecond
		time.Sleep(delay)
		killed.Store(true)
		d.kill9(t, bin, mnt, round == 0)
		waited := make(chan struct{})
		go func() { wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(30 * time.Second):
			t.Errorf("round %d: writers or readers still hang 30s after the daemon died", round)
			d.abortConn(t)
			<-waited
		}
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("daemon log of round %d:\n%s", round, d.log)
			return
		}
		d = startDaemon(t, bin, home, mnt)
		checkAfterKill(t, home, mnt, model, writers, round)
		if !t.Failed() {
			survived++
		}
	}
	d.stop(t)
	model.mu.Lock()
	s := model.stats
	model.mu.Unlock()
	t.Logf("crash suite: %d rounds of kill -9 survived in %v; %d changes started, %d returned success; %d reads checked (%d whole); %d files checked after restarts (%d committed temp files of changes in flight)",
		survived, time.Since(start).Round(time.Second), s.ops, s.opsOK, s.reads, s.readsOK, s.filesChecked, s.tempsFound)
}

// randomContent returns content of a random size: mostly small, sometimes
// empty, sometimes up to -crash.maxkb.
func randomContent(rng *rand.Rand) []byte {
	var n int
	switch p := rng.IntN(100); {
	case p < 5:
		n = 0
	case p < 60:
		n = 1 + rng.IntN(16<<10)
	case p < 90:
		n = 64<<10 + rng.IntN(448<<10)
	default:
		n = 1<<20 + rng.IntN(max(1, *crashMaxKB<<10-1<<20))
	}
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// step makes one change with a real program and records it in the model.
func (cw *crashWriter) step(rng *rand.Rand, model *crashModel, mnt, scratch string, killed *atomic.Bool) error {
	name := cw.names[rng.IntN(len(cw.names))]
	key := cw.item + "/" + name
	target := filepath.Join(mnt, cw.item, name)
	src := filepath.Join(scratch, fmt.Sprintf("w%d-src", cw.id))
	data := randomContent(rng)
	var next []byte
	var cmd *exec.Cmd
	var tempPrefix string // a name the change may leave committed
	var what string
	switch op := rng.IntN(4); op {
	case 0:
		what, next = "cp", data
		cmd = exec.Command("cp", src, target)
	case 1:
		what, next = "rsync", data
		// rsync writes .NAME.XXXXXX, closes it (a commit) and renames
		// it over NAME.
		cmd = exec.Command("rsync", "--ignore-times", "--whole-file", src, target)
		tempPrefix = cw.item + "/." + name + "."
	case 2:
		what = "append"
		data = data[:min(len(data), 64<<10)]
		next = append(append([]byte{}, cw.cur[name]...), data...)
		cmd = exec.Command("sh", "-c", `cat "$0" >> "$1"`, src, target)
	case 3:
		what, next = "cp+mv", data
		tmp := name + ".tmp"
		tempPrefix = cw.item + "/" + tmp
		cmd = exec.Command("sh", "-c", `cp "$0" "$1" && mv -f "$1" "$2"`, src, filepath.Join(mnt, cw.item, tmp), target)
	}
	if err := os.WriteFile(src, data, 0o644); err != nil {
		return err
	}
	sha := model.remember(next)
	if tempPrefix != "" {
		model.mu.Lock()
		model.temps[tempPrefix] = sha
		model.mu.Unlock()
	}
	model.begin(key, sha)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if killed.Load() {
			return errKilled
		}
		return fmt.Errorf("%s of %d bytes to %s: %v\n%s", what, len(data), key, err, out)
	}
	if what == "cp" && len(data) == 0 {
		// cp of an empty file only truncates (or creates) the target, a
		// change without written bytes: that commits at RELEASE, which
		// the kernel sends after close(2) has returned (ARCHITECTURE.md,
		// "Writes"), so a kill right after cp may still find the previous
		// version. Both stay allowed until the next check.
		model.mu.Lock()
		model.stats.opsOK++
		model.stats.releaseCommits++
		model.mu.Unlock()
	} else {
		model.done(key, sha)
	}
	cw.cur[name] = next
	if tempPrefix != "" {
		model.mu.Lock()
		delete(model.temps, tempPrefix)
		model.mu.Unlock()
	}
	return nil
}

// crashRead reads a random file of an item, or all of them, through the
// mount, and fails if it read bytes that were never a whole version
// (guarantee 2). Errors after the kill are expected.
func crashRead(rng *rand.Rand, model *crashModel, mnt string, items []string, killed *atomic.Bool) error {
	item := items[rng.IntN(len(items))]
	entries, err := os.ReadDir(filepath.Join(mnt, item))
	if err != nil {
		if killed.Load() {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if rng.IntN(3) == 0 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(mnt, item, e.Name()))
		model.mu.Lock()
		model.stats.reads++
		model.mu.Unlock()
		if err != nil {
			// ENOENT: renamed over or removed since the listing.
			if killed.Load() || errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		sha := shaOf(b)
		if _, ok := model.content(sha); !ok {
			return fmt.Errorf("%s/%s read %d bytes (sha256 %s) that no writer ever closed: uncommitted or torn content", item, e.Name(), len(b), sha[:16])
		}
		model.mu.Lock()
		model.stats.readsOK++
		model.mu.Unlock()
	}
	return nil
}

// checkAfterKill checks the restarted home against the model, resolves
// the changes that were in flight to what the home shows, and removes
// temp files of changes in flight that had committed.
func checkAfterKill(t *testing.T, home, mnt string, model *crashModel, writers []*crashWriter, round int) {
	t.Helper()
	when := fmt.Sprintf("round %d", round)
	files := checkRestartedHome(t, home, when)
	model.mu.Lock()
	defer model.mu.Unlock()
	seen := map[string]bool{}
	for key, allowed := range model.allowed {
		seen[key] = true
		got := ""
		if f, ok := files[key]; ok {
			got = f.ChecksumInfo.Checksum
		}
		if !contains(allowed, got) {
			t.Errorf("%s: %s is %s after kill -9; the writer allows %s", when, key, label(got), labels(allowed))
			continue
		}
		if len(allowed) > 1 && got == allowed[len(allowed)-1] && got != allowed[0] {
			model.stats.inFlightNew++
		}
		model.allowed[key] = []string{got}
		for _, cw := range writers {
			for _, n := range cw.names {
				if cw.item+"/"+n == key {
					if got == "" {
						delete(cw.cur, n)
					} else {
						cw.cur[n] = model.contents[got]
					}
				}
			}
		}
	}
	var extra []string
	for key := range files {
		if !seen[key] {
			extra = append(extra, key)
		}
	}
	sort.Strings(extra)
	for _, key := range extra {
		// A committed temp file of a change in flight (rsync's
		// .NAME.XXXXXX, cp's NAME.tmp before its mv): complete content
		// of that change, never part of it.
		got := files[key].ChecksumInfo.Checksum
		ok := false
		for prefix, sha := range model.temps {
			if strings.HasPrefix(key, prefix) && got == sha && tempName.MatchString(key[len(prefix):]) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s: %s (%s) is not a file of any writer, nor the whole content of a change in flight", when, key, label(got))
			continue
		}
		model.stats.tempsFound++
		if err := os.Remove(filepath.Join(mnt, key)); err != nil {
			t.Errorf("%s: remove %s: %v", when, key, err)
		}
	}
	for prefix := range model.temps {
		delete(model.temps, prefix)
	}
	// Every file reads back exactly its committed content through the
	// mount.
	for key, f := range files {
		if !seen[key] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(mnt, key))
		if err != nil {
			t.Errorf("%s: read %s: %v", when, key, err)
			continue
		}
		if shaOf(b) != f.ChecksumInfo.Checksum || int64(len(b)) != f.Size {
			t.Errorf("%s: %s reads %d bytes %s, the catalog says %d bytes %s", when, key, len(b), label(shaOf(b)), f.Size, label(f.ChecksumInfo.Checksum))
		}
		model.stats.filesChecked++
	}
}

// tempName matches what follows a temp prefix: rsync's six random
// characters, or nothing (cp+mv's NAME.tmp).
var tempName = regexp.MustCompile(`^([A-Za-z0-9]{6})?$`)

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func label(sha string) string {
	if sha == "" {
		return "absent"
	}
	return "sha256:" + sha[:12]
}

func labels(shas []string) string {
	var out []string
	for _, s := range shas {
		out = append(out, label(s))
	}
	return strings.Join(out, " or ")
}
