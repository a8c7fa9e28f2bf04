package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// toolError is a failed external command: its command line, exit status and
// the tail of its stderr, so that the report says what went wrong.
type toolError struct {
	cmdline string
	err     error
	stderr  string
}

func (e *toolError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.cmdline, e.err)
	if s := strings.TrimSpace(e.stderr); s != "" {
		msg += "\n    stderr: " + strings.ReplaceAll(s, "\n", "\n            ")
	}
	return msg
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }

// runTool runs name with args, stdout to out (nil: discarded), and returns
// how long it took. A non-zero exit is a *toolError carrying stderr. The
// tool runs in its own process group, killed whole on Ctrl-C or when it
// exceeds --tool-timeout; a timeout first has the daemon under test dump
// its goroutines (SIGQUIT), kept beside the working directory.
func (h *harness) runTool(out io.Writer, name string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout = out
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	cmdline := shellJoin(append([]string{name}, args...))
	if h.verbose {
		h.logf("    $ %s", cmdline)
	}
	var timedOut atomic.Bool
	var dump string
	timer := time.AfterFunc(h.cfg.toolTimeout, func() {
		timedOut.Store(true)
		dump = h.dumpDaemon()
		cancel()
	})
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	timer.Stop()
	if err != nil {
		if timedOut.Load() {
			err = fmt.Errorf("no answer after %v: killed (a hang?)%s", h.cfg.toolTimeout, dump)
		} else if h.ctx.Err() != nil {
			return elapsed, h.ctx.Err()
		}
		return elapsed, &toolError{cmdline: cmdline, err: err, stderr: stderr.String()}
	}
	return elapsed, nil
}

// dumpDaemon has the FUSE daemon of the running instance print its
// goroutines (Go's SIGQUIT, which also ends it) and keeps its log outside
// the working directory. It returns a note for the error message.
func (h *harness) dumpDaemon() string {
	h.mu.Lock()
	in := h.current
	h.mu.Unlock()
	if in == nil || in.pid == 0 {
		return ""
	}
	_ = syscall.Kill(in.pid, syscall.SIGQUIT)
	select {
	case <-in.exited:
	case <-time.After(10 * time.Second):
	}
	data, err := os.ReadFile(in.logPath)
	if err != nil {
		return ""
	}
	path := filepath.Join(filepath.Dir(h.work), fmt.Sprintf("clfsbench-hang-%s-%s.log",
		filepath.Base(in.base), time.Now().Format("20060102-150405")))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return ""
	}
	h.logf("clfsbench: %s hung; its goroutine dump is in %s", in.system, path)
	return fmt.Sprintf("; the %s daemon's goroutine dump (SIGQUIT) is in %s", in.system, path)
}

// output runs a tool and returns its stdout.
func (h *harness) output(name string, args ...string) ([]byte, time.Duration, error) {
	var b bytes.Buffer
	d, err := h.runTool(&b, name, args...)
	return b.Bytes(), d, err
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$*?;&|<>()") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}

// dropCaches writes back dirty data and empties the page, dentry and inode
// caches, so that the next access goes to the disk or the FUSE daemon.
func dropCaches() error {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("drop caches: %w", err)
	}
	return nil
}

// mountinfoHas reports whether dir is a mount point, per /proc/self/mountinfo.
func mountinfoHas(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountinfo(fields[4]) == dir {
			return true
		}
	}
	return false
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, ...) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// procStatusKB reads a "Name:   N kB" field of /proc/PID/status.
func procStatusKB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// rssSampler follows the resident set of a daemon during a workload: it
// resets the kernel's high-water mark (clear_refs 5) at the start, samples
// VmRSS every 20 ms, and at the end takes the larger of the samples and
// VmHWM.
type rssSampler struct {
	pid    int
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	peakKB int64
}

func startRSS(pid int) *rssSampler {
	if pid == 0 {
		return nil
	}
	// Resetting the peak is best effort: without it VmHWM also covers
	// what came before this workload, and the samples still bound it.
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	kb, err := procStatusKB(s.pid, "VmRSS")
	if err != nil {
		return
	}
	s.mu.Lock()
	s.peakKB = max(s.peakKB, kb)
	s.mu.Unlock()
}

// Stop ends the sampling and returns the peak in MiB (0 for no daemon).
func (s *rssSampler) Stop() float64 {
	if s == nil {
		return 0
	}
	close(s.stop)
	<-s.done
	s.sample()
	s.mu.Lock()
	peak := s.peakKB
	s.mu.Unlock()
	if hwm, err := procStatusKB(s.pid, "VmHWM"); err == nil {
		peak = max(peak, hwm)
	}
	return float64(peak) / 1024
}

// loadWatcher samples the 1-minute load average during the whole run, so
// that the report says how busy the machine was.
type loadWatcher struct {
	mu      sync.Mutex
	samples []float64
	stop    chan struct{}
	done    chan struct{}
}

func readLoadavg() (one, five, fifteen float64, err error) {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, 0, 0, err
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return 0, 0, 0, fmt.Errorf("/proc/loadavg: %q", data)
	}
	one, _ = strconv.ParseFloat(f[0], 64)
	five, _ = strconv.ParseFloat(f[1], 64)
	fifteen, _ = strconv.ParseFloat(f[2], 64)
	return one, five, fifteen, nil
}

func startLoadWatcher(ctx context.Context) *loadWatcher {
	w := &loadWatcher{stop: make(chan struct{}), done: make(chan struct{})}
	w.sample()
	go func() {
		defer close(w.done)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.stop:
				return
			case <-t.C:
				w.sample()
			}
		}
	}()
	return w
}

func (w *loadWatcher) sample() {
	one, _, _, err := readLoadavg()
	if err != nil {
		return
	}
	w.mu.Lock()
	w.samples = append(w.samples, one)
	w.mu.Unlock()
}

// Stop returns the minimum, mean and maximum of the 1-minute load average
// sampled every 5 s.
func (w *loadWatcher) Stop() (lo, mean, hi float64) {
	close(w.stop)
	<-w.done
	w.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.samples) == 0 {
		return 0, 0, 0
	}
	lo, hi = w.samples[0], w.samples[0]
	sum := 0.0
	for _, s := range w.samples {
		lo, hi, sum = min(lo, s), max(hi, s), sum+s
	}
	return lo, sum / float64(len(w.samples)), hi
}
