package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"clfs/sessionmgr"
)

// machineInfo describes where the figures come from.
type machineInfo struct {
	Started   string            `json:"started"`
	Elapsed   string            `json:"elapsed"`
	CPU       string            `json:"cpu"`
	NProc     int               `json:"nproc"`
	Memory    string            `json:"memory"`
	Kernel    string            `json:"kernel"`
	Disk      string            `json:"disk"`
	WorkDir   string            `json:"work_dir"`
	Clfs      string            `json:"clfs"`
	Loopback  string            `json:"loopback"`
	Peers     []peer            `json:"peers,omitempty"`
	Tools     map[string]string `json:"tools"`
	LoadStart string            `json:"load_start"`
	LoadEnd   string            `json:"load_end"`
	LoadMin   float64           `json:"load1_min"`
	LoadMean  float64           `json:"load1_mean"`
	LoadMax   float64           `json:"load1_max"`
}

func (h *harness) collectMachine() machineInfo {
	m := machineInfo{Started: time.Now().UTC().Format("2006-01-02 15:04 MST"), NProc: runtime.NumCPU(),
		WorkDir: h.work, Tools: map[string]string{}, LoadStart: loadString()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if kb, err := procMeminfoKB("MemTotal"); err == nil {
		m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	m.Disk = diskOf(h.work)
	if h.has(sysClfs) {
		m.Clfs = h.bins.clfs
		if h.cfg.clfsBin == "" {
			m.Clfs = "go build ./cmd/clfs"
			if out, _, err := h.output("git", "-C", h.modDir, "describe", "--always", "--dirty"); err == nil {
				m.Clfs += " at " + strings.TrimSpace(string(out))
			}
		}
	}
	if h.has(sysLoopback) {
		m.Loopback = h.bins.loopback
		if h.cfg.loopBin == "" {
			m.Loopback = "go-fuse example/loopback"
			if out, _, err := h.goIn(h.modDir, "list", "-m", "-f", "{{.Version}}", "github.com/hanwen/go-fuse/v2"); err == nil {
				m.Loopback += " " + strings.TrimSpace(string(out))
			}
		}
		m.Loopback += " (FUSE passthrough as root)"
	}
	m.Peers = h.cfg.peers
	for _, t := range [][]string{{"rsync", "--version"}, {"fio", "--version"}, {"tar", "--version"}, {"dd", "--version"}} {
		if out, _, err := h.output(t[0], t[1:]...); err == nil {
			m.Tools[t[0]] = strings.Join(strings.Fields(strings.SplitN(string(out), "\n", 2)[0]), " ")
		}
	}
	return m
}

func procMeminfoKB(field string) (int64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/meminfo: no %s", field)
}

func loadString() string {
	one, five, fifteen, err := readLoadavg()
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.2f %.2f %.2f", one, five, fifteen)
}

// diskOf describes the filesystem and block device dir lives on.
func diskOf(dir string) string {
	if p, err := filepath.EvalSymlinks(dir); err == nil {
		dir = p
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "?"
	}
	defer f.Close()
	var best, fstype, source string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, fstype, source = mp, fields[sep+1], unescapeMountinfo(fields[sep+2])
		}
	}
	desc := fmt.Sprintf("%s (%s, mounted on %s)", source, fstype, best)
	dev, ok := strings.CutPrefix(source, "/dev/")
	if !ok {
		return desc
	}
	sys, err := filepath.EvalSymlinks("/sys/class/block/" + dev)
	if err != nil {
		return desc
	}
	var extra []string
	if data, err := os.ReadFile(filepath.Join(sys, "size")); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil {
			extra = append(extra, fmt.Sprintf("%.0f GiB", float64(n)*512/(1<<30)))
		}
	}
	whole := sys
	if _, err := os.Stat(filepath.Join(whole, "queue")); err != nil {
		whole = filepath.Dir(sys) // a partition: the disk is its parent
	}
	for _, name := range []string{"device/vendor", "device/model"} {
		if data, err := os.ReadFile(filepath.Join(whole, name)); err == nil && strings.TrimSpace(string(data)) != "" {
			extra = append(extra, strings.TrimSpace(string(data)))
		}
	}
	if drv, err := filepath.EvalSymlinks(filepath.Join(whole, "device", "driver")); err == nil {
		extra = append(extra, "driver "+filepath.Base(drv))
	}
	if data, err := os.ReadFile(filepath.Join(whole, "queue", "rotational")); err == nil {
		extra = append(extra, "rotational="+strings.TrimSpace(string(data)))
	}
	if len(extra) > 0 {
		desc = fmt.Sprintf("%s (%s, mounted on %s; %s)", source, fstype, best, strings.Join(extra, ", "))
	}
	return desc
}

func phaseOf(workload string) string {
	for _, ph := range phases {
		if slices.Contains(ph.workloads, workload) {
			return ph.name
		}
	}
	return ""
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func formatValue(v float64) string {
	switch a := max(v, -v); {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// row is one line of the report.
type row struct {
	Key              string               `json:"key"`
	Workload         string               `json:"workload"`
	Label            string               `json:"label"`
	Unit             string               `json:"unit"`
	HigherIsBetter   bool                 `json:"higher_is_better"`
	Runs             map[string][]float64 `json:"runs"`
	Median           map[string]float64   `json:"median"`
	ClfsOverNative   *float64             `json:"clfs_over_native,omitempty"`
	ClfsOverLoopback *float64             `json:"clfs_over_loopback,omitempty"`
	ClfsOverPeer     map[string]float64   `json:"clfs_over_peer,omitempty"`
	// MetaOverClfs is clfs on --meta's catalog over clfs on Badger.
	MetaOverClfs *float64 `json:"clfs_meta_over_clfs,omitempty"`
	// RequestsPer is the unit of Requests ("file", or "entry" for W4);
	// Requests[system] is there for the systems with FUSE request
	// counters (clfs).
	RequestsPer string                    `json:"requests_per,omitempty"`
	Requests    map[string]requestFigures `json:"requests,omitempty"`
}

func (h *harness) rows() []row {
	var rows []row
	for _, m := range metrics {
		if !h.cfg.want[m.workload] {
			continue
		}
		if m.daemon && !h.has(sysLoopback) && !h.has(sysClfs) && len(h.cfg.peers) == 0 {
			continue
		}
		r := row{Key: m.key, Workload: m.workload, Label: h.labelOf(m), Unit: m.unit, HigherIsBetter: m.higher,
			Runs: map[string][]float64{}, Median: map[string]float64{}}
		for sys, v := range h.results[m.key] {
			r.Runs[sys] = v
			r.Median[sys] = median(v)
		}
		ratio := func(ref string) *float64 {
			c, ok1 := r.Median[sysClfs]
			d, ok2 := r.Median[ref]
			if !ok1 || !ok2 || d == 0 {
				return nil
			}
			q := c / d
			return &q
		}
		r.ClfsOverNative, r.ClfsOverLoopback = ratio(sysNative), ratio(sysLoopback)
		if q := ratio(h.cfg.metaSystem); q != nil && *q != 0 {
			inv := 1 / *q
			r.MetaOverClfs = &inv
		}
		for _, p := range h.cfg.peers {
			if q := ratio(p.Name); q != nil {
				if r.ClfsOverPeer == nil {
					r.ClfsOverPeer = map[string]float64{}
				}
				r.ClfsOverPeer[p.Name] = *q
			}
		}
		for sys, runs := range h.requests[m.key] {
			if r.Requests == nil {
				r.Requests = map[string]requestFigures{}
				r.RequestsPer = "file"
				if m.workload == "W4" {
					r.RequestsPer = "entry"
				}
			}
			r.Requests[sys] = summarizeRequests(runs)
		}
		rows = append(rows, r)
	}
	return rows
}

func (h *harness) report() {
	rows := h.rows()
	if h.cfg.jsonOut {
		cfg := map[string]any{"quick": h.cfg.quick, "runs": h.cfg.runs, "systems": h.cfg.systems,
			"big_size": h.cfg.bigSize, "tar_files": h.cfg.tarFiles, "tar_dirs": h.cfg.tarDirs,
			"tar_file_size": h.cfg.tarFileSize, "rsync_size": h.data.rsyncBytes, "rsync_files": h.data.rsyncFiles,
			"fio_size": h.cfg.fioSize, "fio_rand_io": h.cfg.fioRandIO}
		var ws []string
		for w := range h.cfg.want {
			ws = append(ws, w)
		}
		slices.Sort(ws)
		cfg["workloads"] = ws
		cfg["peers"] = append([]peer{}, h.cfg.peers...)
		out := struct {
			Machine machineInfo    `json:"machine"`
			Config  map[string]any `json:"config"`
			Rows    []row          `json:"rows"`
			Errors  []string       `json:"errors"`
		}{h.machine, cfg, rows, append([]string{}, h.errors...)}
		enc := json.NewEncoder(h.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return
	}
	h.printText(h.stdout, rows)
}

func (h *harness) printText(w io.Writer, rows []row) {
	m := h.machine
	mode := "full"
	if h.cfg.quick {
		mode = "quick"
	}
	fmt.Fprintf(w, "clfsbench (%s): %d run(s), interleaved %s; started %s, took %s\n",
		mode, h.cfg.runs, strings.Join(h.cfg.systems, " "), m.Started, m.Elapsed)
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s RAM, kernel %s\n", m.NProc, m.CPU, m.Memory, m.Kernel)
	fmt.Fprintf(w, "disk:    %s\n", m.Disk)
	fmt.Fprintf(w, "         every system's data under %s\n", m.WorkDir)
	if m.Clfs != "" {
		fmt.Fprintf(w, "clfs:    %s\n", m.Clfs)
	}
	if m.Loopback != "" {
		fmt.Fprintf(w, "loopback: %s\n", m.Loopback)
	}
	if h.cfg.metaSystem != "" {
		fmt.Fprintf(w, "%s: the same clfs with --meta %s/clfsbench-RUN (a prefix per mount, dropped after)\n", h.cfg.metaSystem, sessionmgr.RedactCatalogURL(h.cfg.meta))
	}
	for _, p := range m.Peers {
		fmt.Fprintf(w, "peer %s: sh -c %s\n", p.Name, shellJoin([]string{p.Cmd}))
	}
	var tools []string
	for _, t := range []string{"dd", "tar", "rsync", "fio"} {
		if v := m.Tools[t]; v != "" {
			tools = append(tools, v)
		}
	}
	fmt.Fprintf(w, "tools:   %s\n", strings.Join(tools, "; "))
	fmt.Fprintf(w, "load:    %s at start, %s at end; 1-min load during the run min %.2f mean %.2f max %.2f (%d CPUs)\n",
		m.LoadStart, m.LoadEnd, m.LoadMin, m.LoadMean, m.LoadMax, m.NProc)
	if h.data.rsyncFiles > 0 {
		fmt.Fprintf(w, "W5 tree: %d files in %d items, %s\n", h.data.rsyncFiles, h.data.rsyncDirs, sizeString(h.data.rsyncBytes))
	}
	fmt.Fprintln(w)

	columns := slices.Clone(allSystems)
	if h.cfg.metaSystem != "" {
		columns = append(columns, h.cfg.metaSystem)
	}
	for _, p := range h.cfg.peers {
		columns = append(columns, p.Name)
	}
	header := append([]string{"workload", "unit"}, columns...)
	header = append(header, "clfs/native", "clfs/loopback")
	if h.cfg.metaSystem != "" {
		header = append(header, h.cfg.metaSystem+"/clfs")
	}
	for _, p := range h.cfg.peers {
		header = append(header, "clfs/"+p.Name)
	}
	cells := [][]string{header}
	var spread [][]string
	for _, r := range rows {
		line := []string{r.Label, r.Unit}
		sp := []string{r.Label, r.Unit}
		for _, sys := range columns {
			switch v, ok := r.Median[sys]; {
			case ok:
				mark := ""
				if h.failed[phaseOf(r.Workload)][sys] {
					mark = "!" // from the runs that did not fail
				}
				line = append(line, formatValue(v)+mark)
				lo, hi := slices.Min(r.Runs[sys]), slices.Max(r.Runs[sys])
				sp = append(sp, formatValue(lo)+".."+formatValue(hi))
			case h.failed[phaseOf(r.Workload)][sys] && !(sys == sysNative && strings.HasPrefix(r.Key, "rss_")):
				line, sp = append(line, "ERR"), append(sp, "ERR")
			default: // not measured: not selected, not applicable or interrupted
				line, sp = append(line, "-"), append(sp, "-")
			}
		}
		ratios := []*float64{r.ClfsOverNative, r.ClfsOverLoopback}
		if h.cfg.metaSystem != "" {
			ratios = append(ratios, r.MetaOverClfs)
		}
		for _, p := range h.cfg.peers {
			if q, ok := r.ClfsOverPeer[p.Name]; ok {
				ratios = append(ratios, &q)
			} else {
				ratios = append(ratios, nil)
			}
		}
		for _, q := range ratios {
			if q == nil {
				line = append(line, "-")
			} else {
				line = append(line, fmt.Sprintf("%.2f", *q))
			}
		}
		cells = append(cells, line)
		spread = append(spread, sp)
	}
	writeTable(w, cells)
	fmt.Fprintf(w, "\nMedians of %d run(s). Ratios are clfs/reference: for MiB/s, files/s, entries/s and IOPS\n"+
		"higher is better (ratio < 1: clfs is slower); for s and MiB lower is better (ratio > 1: clfs is\n"+
		"slower or bigger). RSS is the FUSE daemon's peak (VmHWM and VmRSS sampled every 20 ms).\n"+
		"ERR: every run failed; a value marked ! comes from the runs that did not fail.\n", h.cfg.runs)
	if h.cfg.runs > 1 && len(spread) > 0 {
		fmt.Fprintf(w, "\nSpread (min..max over the runs):\n")
		writeTable(w, append([][]string{header[:2+len(columns)]}, spread...))
	}
	h.printRequests(w, rows, columns)
}

// printRequests prints the FUSE requests per file of each step, for the
// systems with counters, beside clfs's figure for the same step.
func (h *harness) printRequests(w io.Writer, rows []row, columns []string) {
	var cells [][]string
	for _, r := range rows {
		if len(r.Requests) == 0 {
			continue
		}
		figure := "-"
		if v, ok := r.Median[sysClfs]; ok {
			figure = formatValue(v) + " " + r.Unit
		}
		line := []string{r.Label, figure, r.RequestsPer}
		for _, sys := range columns {
			if f, ok := r.Requests[sys]; ok {
				line = append(line, formatPerUnit(f.Total))
			} else {
				line = append(line, "—")
			}
		}
		byOp := "—"
		if f, ok := r.Requests[sysClfs]; ok {
			byOp = topOpcodes(f.ByOpcode, 8)
		}
		cells = append(cells, append(line, byOp))
	}
	if len(cells) == 0 {
		return
	}
	header := append([]string{"workload", "clfs result", "requests per"}, columns...)
	header = append(header, "clfs, by opcode")
	fmt.Fprintf(w, "\nFUSE requests per file (per entry for W4), from the clfs daemon's counters read before and\n"+
		"after each step (medians of %d run(s)); —: no counters (not a clfs mount):\n", h.cfg.runs)
	left := map[int]bool{0: true, 2: true, len(header) - 1: true}
	writeAligned(w, append([][]string{header}, cells...), left)
}

// writeTable prints cells in aligned columns: the first two left-aligned,
// the others right-aligned.
func writeTable(w io.Writer, cells [][]string) {
	writeAligned(w, cells, map[int]bool{0: true, 1: true})
}

// writeAligned prints cells in aligned columns, the columns in left
// left-aligned, the others right-aligned, and a rule under the first line.
func writeAligned(w io.Writer, cells [][]string, left map[int]bool) {
	width := map[int]int{}
	for _, line := range cells {
		for i, c := range line {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for n, line := range cells {
		var b strings.Builder
		for i, c := range line {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			switch {
			case i == 0:
				b.WriteString(c + pad)
			case left[i]:
				b.WriteString("  " + c + pad)
			default:
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if n == 0 {
			total := 0
			for i := range line {
				total += width[i] + 2
			}
			fmt.Fprintln(w, strings.Repeat("-", total-2))
		}
	}
}
