// Command clfsbench measures clfs against two references on this machine:
// a plain directory on the same disk (native) and go-fuse's own loopback
// filesystem (loopback, with FUSE passthrough as root), and against any
// other FUSE filesystem given as a peer. It mounts each system afresh for
// every phase of every run, runs identical workloads inside ROOT/lib/ITEM
// (the only place clfs allows files), and prints the medians, the ratios
// clfs/reference, and the FUSE requests per file the clfs daemon served
// in each step (its counters, read before and after the step).
//
//	go run ./cmd/clfsbench [--quick] [--runs N] [--dir DIR] [--systems native,loopback,clfs]
//	                       [--workloads W1,...,W6] [--clfs PATH] [--loopback PATH] [--json]
//	                       [--peer NAME=MOUNTCMD ...] [--mount-timeout 30s]
//
// A peer's MOUNTCMD runs with sh -c, in the foreground, with MNT (the
// directory to mount) and BACKING (an empty directory for its data) in its
// environment; the harness waits for MNT to be a mount point, runs the
// workloads there, then unmounts it (umount, else umount -l), lets the
// command exit by itself for 5 s, and else ends its process group
// (SIGTERM, SIGKILL 10 s later).
//
// It needs root (drop_caches, passthrough), /dev/fuse, dd, tar, find, ls,
// rsync, fio and fusermount3. It exits non-zero on any tool failure and on
// any content, mode or mtime mismatch, never because of a timing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	quick     bool
	runs      int
	dir       string
	systems   []string
	want      map[string]bool // selected workloads
	clfsBin   string
	loopBin   string
	jsonOut   bool
	keep      bool
	verbose   bool
	bigSize   int64 // W1/W2
	tarFiles  int   // W3/W4
	tarDirs   int
	rsyncSize int64 // W5
	fioSize   int64 // W6
	fioRandIO int64

	tarFileSize  int
	toolTimeout  time.Duration
	mountTimeout time.Duration
	peers        []peer // in the order given; their names are in systems too
	// meta, if set, is a catalog URL clfs is also measured on, as the
	// system metaSystem (clfs-etcd for etcd://...): every mount of it
	// gets a prefix of its own under the URL, dropped after.
	meta       string
	metaSystem string
}

// peer is another FUSE filesystem to measure: MOUNTCMD, run with sh -c.
type peer struct {
	Name string `json:"name"`
	Cmd  string `json:"mount_cmd"`
}

// peerFlag collects the repeatable --peer NAME=MOUNTCMD.
type peerFlag struct{ peers *[]peer }

func (f peerFlag) String() string {
	if f.peers == nil {
		return ""
	}
	var s []string
	for _, p := range *f.peers {
		s = append(s, p.Name+"="+p.Cmd)
	}
	return strings.Join(s, " ")
}

// Set checks one value: a name that is a path element and no other
// system's, then a non-empty command.
func (f peerFlag) Set(v string) error {
	name, cmd, ok := strings.Cut(v, "=")
	name, cmd = strings.TrimSpace(name), strings.TrimSpace(cmd)
	switch {
	case !ok:
		return fmt.Errorf("want NAME=MOUNTCMD, got %q (no =)", v)
	case name == "":
		return fmt.Errorf("want NAME=MOUNTCMD, got %q (empty name)", v)
	case !validPeerName(name):
		return fmt.Errorf("peer name %q: use letters, digits, '.', '_' and '-' only", name)
	case slices.Contains(allSystems, name):
		return fmt.Errorf("peer name %q is a built-in system's; choose another", name)
	case slices.ContainsFunc(*f.peers, func(p peer) bool { return p.Name == name }):
		return fmt.Errorf("peer name %q given twice", name)
	case cmd == "":
		return fmt.Errorf("peer %q: empty mount command", name)
	}
	*f.peers = append(*f.peers, peer{Name: name, Cmd: cmd})
	return nil
}

func validPeerName(name string) bool {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return name != "." && name != ".."
}

type harness struct {
	ctx     context.Context
	cfg     config
	stdout  io.Writer
	stderr  io.Writer
	verbose bool

	work    string // everything of this harness run lives under it
	modDir  string // the clfs module, if run inside it
	bins    struct{ clfs, loopback string }
	data    dataset
	srcTree map[string]entryInfo // the rsync source, with content
	machine machineInfo

	mu      sync.Mutex
	live    map[*instance]bool
	current *instance // the instance the workloads run on
	errors  []string
	// results[metric][system] holds one value per run.
	results map[string]map[string][]float64
	// failed[phase][system]: some run of that phase failed there.
	failed map[string]map[string]bool
	// requests[metric][system] holds, per run, the FUSE requests per
	// file (or entry) of the step, by opcode: only clfs has them.
	requests     map[string]map[string][]map[string]float64
	countersWarn sync.Once
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// parseSize reads 2G, 64M, 4k, 1048576 (binary units).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	if n := len(s); n > 0 {
		switch strings.ToUpper(s[n-1:]) {
		case "K":
			mult, s = 1<<10, s[:n-1]
		case "M":
			mult, s = 1<<20, s[:n-1]
		case "G":
			mult, s = 1<<30, s[:n-1]
		}
	}
	v, err := strconv.ParseInt(strings.TrimSuffix(strings.ToUpper(s), "I"), 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 2G, 64M, 4k)", s)
	}
	return v * mult, nil
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fl := flag.NewFlagSet("clfsbench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	quick := fl.Bool("quick", false, "CI size: 64 MiB, 500 files, 20 MiB rsync tree, small fio, 1 run; fails only on errors and mismatches")
	runs := fl.Int("runs", 3, "runs of every workload on every system (interleaved); the table shows medians")
	dir := fl.String("dir", "", "where to put everything (a fresh sub-directory is made and removed); default /var/tmp, else the working directory; not tmpfs")
	systems := fl.String("systems", strings.Join(allSystems, ","), "systems to measure")
	workloads := fl.String("workloads", "W1,W2,W3,W4,W5,W6", "workloads to run")
	clfsBin := fl.String("clfs", "", "prebuilt clfs binary (default: go build ./cmd/clfs of this module)")
	loopBin := fl.String("loopback", "", "prebuilt go-fuse example/loopback binary (default: built at the go.mod version)")
	jsonOut := fl.Bool("json", false, "print the report as JSON (with every run's value) instead of the table")
	keep := fl.Bool("keep", false, "keep the working directory (data, daemon logs) for inspection")
	verbose := fl.Bool("v", false, "print every command")
	bigSize := fl.String("size", "2G", "W1/W2 file size")
	tarFiles := fl.Int("files", 5000, "W3/W4 number of 4 KiB files")
	tarDirs := fl.Int("file-dirs", 50, "W3/W4 number of directories (items) they are in")
	rsyncSize := fl.String("rsync-size", "200M", "W5 tree size")
	fioSize := fl.String("fio-size", "1G", "W6 file size")
	fioRandIO := fl.String("fio-rand-io", "256M", "W6 bytes read by the 4 KiB random read")
	toolTimeout := fl.Duration("tool-timeout", 15*time.Minute, "kill a tool (and dump the daemon's goroutines) after this long: a hang is an error")
	mountTimeout := fl.Duration("mount-timeout", 30*time.Second, "how long a daemon or peer may take to mount")
	metaURL := fl.String("meta", "", "`URL`: also measure clfs with its catalog there (etcd://HOST:PORT[,...]/PREFIX), as system clfs-etcd;\n"+
		"each mount gets a prefix of its own under PREFIX, dropped after")
	var peers []peer
	fl.Var(peerFlag{&peers}, "peer", "`NAME=MOUNTCMD`: also measure another FUSE filesystem, mounted by sh -c MOUNTCMD in the foreground\n"+
		"with $MNT (mount it there) and $BACKING (a directory for its data); repeatable")
	if err := fl.Parse(args); err != nil {
		return config{}, err
	}
	if fl.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	set := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		defaults := map[string]string{"runs": "1", "size": "64M", "files": "500", "file-dirs": "10",
			"rsync-size": "20M", "fio-size": "32M", "fio-rand-io": "8M", "tool-timeout": "60s"}
		for name, v := range defaults {
			if !set[name] {
				if err := fl.Set(name, v); err != nil {
					return config{}, err
				}
			}
		}
	}
	cfg := config{quick: *quick, runs: *runs, dir: *dir, clfsBin: *clfsBin, loopBin: *loopBin,
		jsonOut: *jsonOut, keep: *keep, verbose: *verbose, tarFiles: *tarFiles, tarDirs: *tarDirs,
		tarFileSize: 4096, toolTimeout: *toolTimeout, mountTimeout: *mountTimeout, peers: peers, want: map[string]bool{}}
	if cfg.runs < 1 {
		return cfg, fmt.Errorf("--runs must be at least 1")
	}
	if cfg.mountTimeout <= 0 {
		return cfg, fmt.Errorf("--mount-timeout must be positive")
	}
	if cfg.tarFiles < 1 || cfg.tarDirs < 1 || cfg.tarDirs > cfg.tarFiles {
		return cfg, fmt.Errorf("--files and --file-dirs must be positive, with at least one file per directory")
	}
	var err error
	for _, s := range []struct {
		dst *int64
		v   string
	}{{&cfg.bigSize, *bigSize}, {&cfg.rsyncSize, *rsyncSize}, {&cfg.fioSize, *fioSize}, {&cfg.fioRandIO, *fioRandIO}} {
		if *s.dst, err = parseSize(s.v); err != nil {
			return cfg, err
		}
	}
	cfg.fioRandIO = min(cfg.fioRandIO, cfg.fioSize)
	for _, s := range strings.Split(*systems, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(allSystems, s) {
			return cfg, fmt.Errorf("unknown system %q (want some of %s)", s, strings.Join(allSystems, ","))
		}
		if !slices.Contains(cfg.systems, s) {
			cfg.systems = append(cfg.systems, s)
		}
	}
	// Keep the canonical order native, loopback, clfs: the interleaving
	// is then the same whatever the flag's order.
	slices.SortFunc(cfg.systems, func(a, b string) int {
		return slices.Index(allSystems, a) - slices.Index(allSystems, b)
	})
	if *metaURL != "" {
		u, err := url.Parse(*metaURL)
		if err != nil || u.Scheme == "" {
			return cfg, fmt.Errorf("--meta %q: want a catalog URL such as etcd://HOST:PORT/PREFIX", *metaURL)
		}
		if !slices.Contains(cfg.systems, sysClfs) {
			return cfg, errors.New("--meta measures clfs on another catalog: it needs clfs among --systems")
		}
		cfg.meta, cfg.metaSystem = *metaURL, "clfs-"+u.Scheme
		cfg.systems = append(cfg.systems, cfg.metaSystem)
	}
	// The peers come after, in the order given.
	for _, p := range cfg.peers {
		cfg.systems = append(cfg.systems, p.Name)
	}
	for _, w := range strings.Split(*workloads, ",") {
		w = strings.ToUpper(strings.TrimSpace(w))
		if len(w) != 2 || w[0] != 'W' || w[1] < '1' || w[1] > '6' {
			return cfg, fmt.Errorf("unknown workload %q (want some of W1..W6)", w)
		}
		cfg.want[w] = true
	}
	return cfg, nil
}

// run is the whole harness; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		fmt.Fprintln(stderr, "clfsbench:", err)
		return 2
	}
	h := &harness{ctx: ctx, cfg: cfg, stdout: stdout, stderr: stderr, verbose: cfg.verbose,
		live: map[*instance]bool{}, results: map[string]map[string][]float64{}, failed: map[string]map[string]bool{},
		requests: map[string]map[string][]map[string]float64{}}
	start := time.Now()
	err = h.main()
	if err != nil && !(ctx.Err() != nil && errors.Is(err, ctx.Err())) {
		h.fail(err.Error())
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "clfsbench: interrupted; cleaning up")
	}
	if err := h.stopAll(); err != nil {
		h.fail("cleanup: " + err.Error())
	}
	if h.work != "" && !cfg.keep {
		if err := os.RemoveAll(h.work); err != nil {
			h.fail("cleanup: " + err.Error())
		}
	} else if h.work != "" {
		fmt.Fprintf(stderr, "clfsbench: kept %s\n", h.work)
	}
	h.machine.Elapsed = time.Since(start).Round(time.Second).String()
	if h.machine.Kernel != "" {
		h.report()
	}
	if len(h.errors) > 0 {
		fmt.Fprintf(stderr, "\nclfsbench: FAILED with %d error(s):\n", len(h.errors))
		for _, e := range h.errors {
			fmt.Fprintf(stderr, "  - %s\n", strings.ReplaceAll(e, "\n", "\n    "))
		}
		return 1
	}
	if ctx.Err() != nil {
		return 130
	}
	return 0
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.stderr, format+"\n", args...)
}

func (h *harness) fail(msg string) {
	h.mu.Lock()
	h.errors = append(h.errors, msg)
	h.mu.Unlock()
	h.logf("ERROR: %s", strings.ReplaceAll(msg, "\n", "\n    "))
}

func (h *harness) has(system string) bool { return slices.Contains(h.cfg.systems, system) }

// peer returns the peer named system, if it is one.
func (h *harness) peer(system string) (peer, bool) {
	i := slices.IndexFunc(h.cfg.peers, func(p peer) bool { return p.Name == system })
	if i < 0 {
		return peer{}, false
	}
	return h.cfg.peers[i], true
}

func (h *harness) main() error {
	if err := h.preflight(); err != nil {
		return err
	}
	if err := h.makeWorkDir(); err != nil {
		return err
	}
	h.logf("clfsbench: working in %s", h.work)
	if err := h.build(); err != nil {
		return err
	}
	h.machine = h.collectMachine()
	load := startLoadWatcher(h.ctx)
	defer func() {
		h.machine.LoadMin, h.machine.LoadMean, h.machine.LoadMax = load.Stop()
		h.machine.LoadEnd = loadString()
	}()
	if err := h.prepareData(); err != nil {
		return err
	}
	return h.schedule()
}

// preflight checks what every selected workload needs before anything
// is built or written.
func (h *harness) preflight() error {
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "must run as root (drop_caches between cold runs; loopback's FUSE passthrough)")
	}
	var tools []string
	add := func(w string, t ...string) {
		if h.cfg.want[w] {
			tools = append(tools, t...)
		}
	}
	if h.cfg.want["W1"] || h.cfg.want["W2"] {
		tools = append(tools, "dd")
	}
	if h.cfg.want["W3"] || h.cfg.want["W4"] {
		tools = append(tools, "tar", "find", "rm")
	}
	add("W4", "ls")
	add("W5", "rsync")
	add("W6", "fio")
	if h.has(sysLoopback) || h.has(sysClfs) || len(h.cfg.peers) > 0 {
		tools = append(tools, "fusermount3", "umount")
		if _, err := os.Stat("/dev/fuse"); err != nil {
			problems = append(problems, "no /dev/fuse: "+err.Error())
		}
	}
	if len(h.cfg.peers) > 0 {
		tools = append(tools, "sh")
	}
	if (h.has(sysClfs) && h.cfg.clfsBin == "") || (h.has(sysLoopback) && h.cfg.loopBin == "") {
		tools = append(tools, "go")
	}
	var missing []string
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil && !slices.Contains(missing, t) {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		problems = append(problems, "missing tools: "+strings.Join(missing, " ")+
			" (apt-get install rsync fio fuse3 tar coreutils findutils)")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// makeWorkDir creates the harness's directory: under --dir, else /var/tmp,
// else the working directory; never on tmpfs unless asked for.
func (h *harness) makeWorkDir() error {
	base := h.cfg.dir
	if base == "" {
		for _, cand := range []string{"/var/tmp", "."} {
			if fi, err := os.Stat(cand); err == nil && fi.IsDir() && !isTmpfs(cand) {
				base = cand
				break
			}
		}
		if base == "" {
			return errors.New("/var/tmp and the working directory are both tmpfs: pass --dir on a real disk")
		}
	} else {
		if err := os.MkdirAll(base, 0o755); err != nil {
			return err
		}
		if isTmpfs(base) {
			h.logf("clfsbench: WARNING: %s is tmpfs: the figures will not be a disk's", base)
		}
	}
	abs, err := filepath.Abs(base)
	if err != nil {
		return err
	}
	h.work, err = os.MkdirTemp(abs, "clfsbench-")
	return err
}

func isTmpfs(dir string) bool {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return false
	}
	const tmpfsMagic, ramfsMagic = 0x01021994, 0x858458f6
	return st.Type == tmpfsMagic || st.Type == ramfsMagic
}

// build makes the clfs binary (go build of this module's cmd/clfs) and
// go-fuse's example/loopback at the version in go.mod.
func (h *harness) build() error {
	bin := filepath.Join(h.work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	needGo := (h.has(sysClfs) && h.cfg.clfsBin == "") || (h.has(sysLoopback) && h.cfg.loopBin == "")
	if needGo {
		out, _, err := h.output("go", "env", "GOMOD")
		gomod := strings.TrimSpace(string(out))
		if err == nil && gomod != "" && gomod != os.DevNull {
			if data, err := os.ReadFile(gomod); err == nil && isClfsModule(data) {
				h.modDir = filepath.Dir(gomod)
			}
		}
		if h.modDir == "" {
			return errors.New("not inside the clfs module: run from the repository, or pass --clfs and --loopback")
		}
	}
	if h.has(sysClfs) {
		if h.cfg.clfsBin != "" {
			p, err := filepath.Abs(h.cfg.clfsBin)
			if err != nil {
				return err
			}
			h.bins.clfs = p
		} else {
			h.bins.clfs = filepath.Join(bin, "clfs")
			h.logf("clfsbench: go build ./cmd/clfs")
			if err := h.goBuild(h.modDir, h.bins.clfs, "./cmd/clfs"); err != nil {
				return err
			}
		}
	}
	if h.has(sysLoopback) {
		if h.cfg.loopBin != "" {
			p, err := filepath.Abs(h.cfg.loopBin)
			if err != nil {
				return err
			}
			h.bins.loopback = p
		} else {
			h.bins.loopback = filepath.Join(bin, "loopback")
			h.logf("clfsbench: go build github.com/hanwen/go-fuse/v2/example/loopback")
			err := h.goBuild(h.modDir, h.bins.loopback, "github.com/hanwen/go-fuse/v2/example/loopback")
			if err != nil {
				// Not buildable from the module (e.g. missing go.sum
				// lines): build it inside the module cache's copy of
				// the version go.mod names.
				out, _, lerr := h.goIn(h.modDir, "list", "-m", "-f", "{{.Dir}}", "github.com/hanwen/go-fuse/v2")
				dir := strings.TrimSpace(string(out))
				if lerr != nil || dir == "" {
					return errors.Join(err, lerr)
				}
				if err2 := h.goBuild(dir, h.bins.loopback, "./example/loopback"); err2 != nil {
					return errors.Join(err, err2)
				}
			}
		}
	}
	return nil
}

func isClfsModule(gomod []byte) bool {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == "clfs"
		}
	}
	return false
}

func (h *harness) goIn(dir string, args ...string) ([]byte, time.Duration, error) {
	cmd := []string{"-C", dir}
	return h.output("go", append(cmd, args...)...)
}

func (h *harness) goBuild(dir, out, pkg string) error {
	_, _, err := h.goIn(dir, "build", "-o", out, pkg)
	return err
}

// prepareData generates the inputs of the selected workloads, once, on
// the local disk.
func (h *harness) prepareData() error {
	dir := filepath.Join(h.work, "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	start := time.Now()
	var err error
	if h.cfg.want["W1"] || h.cfg.want["W2"] {
		h.data.big, h.data.bigSize = filepath.Join(dir, "random.bin"), h.cfg.bigSize
		if h.data.bigSum, err = genBig(h.data.big, h.cfg.bigSize); err != nil {
			return fmt.Errorf("generate %s: %w", h.data.big, err)
		}
	}
	if h.cfg.want["W3"] || h.cfg.want["W4"] {
		h.data.tar, h.data.tarDirs, h.data.tarFiles = filepath.Join(dir, "small.tar"), h.cfg.tarDirs, h.cfg.tarFiles
		if err := genTar(h.data.tar, h.cfg.tarDirs, h.cfg.tarFiles, h.cfg.tarFileSize); err != nil {
			return fmt.Errorf("generate %s: %w", h.data.tar, err)
		}
	}
	if h.cfg.want["W5"] {
		h.data.rsyncSrc = filepath.Join(dir, "tree")
		h.data.rsyncFiles, h.data.rsyncDirs, h.data.rsyncBytes, err = genRsyncTree(h.data.rsyncSrc, h.cfg.rsyncSize)
		if err != nil {
			return fmt.Errorf("generate %s: %w", h.data.rsyncSrc, err)
		}
		if h.srcTree, err = scanTree(h.data.rsyncSrc, true); err != nil {
			return err
		}
	}
	syscall.Sync()
	h.logf("clfsbench: data ready in %.1f s", time.Since(start).Seconds())
	return nil
}

// schedule runs every selected phase on every system, run by run, the
// systems interleaved (native loopback clfs native loopback clfs ...) so
// that a drift of the machine spreads evenly over them; each phase gets a
// fresh instance of its system.
func (h *harness) schedule() error {
	for r := 1; r <= h.cfg.runs; r++ {
		for _, ph := range phases {
			if !slices.ContainsFunc(ph.workloads, func(w string) bool { return h.cfg.want[w] }) {
				continue
			}
			for _, sys := range h.cfg.systems {
				if h.ctx.Err() != nil {
					return h.ctx.Err()
				}
				h.runPhase(r, ph, sys)
			}
		}
	}
	return h.ctx.Err()
}

func (h *harness) runPhase(r int, ph phase, sys string) {
	start := time.Now()
	where := fmt.Sprintf("run %d/%d %-5s %-8s", r, h.cfg.runs, ph.name, sys)
	var got []string
	rec := func(key string, v float64) {
		h.mu.Lock()
		if h.results[key] == nil {
			h.results[key] = map[string][]float64{}
		}
		h.results[key][sys] = append(h.results[key][sys], v)
		h.mu.Unlock()
		got = append(got, fmt.Sprintf("%s=%s", key, formatValue(v)))
	}
	in, err := h.start(sys, fmt.Sprintf("r%d-%s-%s", r, ph.name, sys))
	if err != nil {
		if h.ctx.Err() != nil {
			return
		}
		h.phaseFailed(ph.name, sys)
		h.fail(fmt.Sprintf("%s: set up: %v", where, err))
		return
	}
	h.mu.Lock()
	h.current = in
	h.mu.Unlock()
	err = ph.run(h, in, rec)
	h.mu.Lock()
	h.current = nil
	h.mu.Unlock()
	if err != nil && in.pid != 0 {
		err = fmt.Errorf("%w%s", err, in.logTail())
	}
	stopErr := h.stop(in)
	if err != nil && h.ctx.Err() == nil {
		h.phaseFailed(ph.name, sys)
		h.fail(fmt.Sprintf("%s: %v", where, err))
	}
	if stopErr != nil {
		h.phaseFailed(ph.name, sys)
		h.fail(fmt.Sprintf("%s: tear down: %v", where, stopErr))
	}
	if h.ctx.Err() != nil {
		return
	}
	h.logf("%s %5.1f s  %s", where, time.Since(start).Seconds(), strings.Join(got, " "))
}

func (h *harness) phaseFailed(phase, sys string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failed[phase] == nil {
		h.failed[phase] = map[string]bool{}
	}
	h.failed[phase][sys] = true
}
