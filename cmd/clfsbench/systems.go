package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"clfs/mount/control"
	"clfs/sessionmgr"
)

// The systems under test. Every one gives a directory ROOT on the same disk,
// in which the workloads create ROOT/lib/ITEM/FILE. The peers (--peer) are
// systems too, named by the user.
const (
	sysNative   = "native"   // a plain directory
	sysLoopback = "loopback" // go-fuse's example/loopback over a plain directory
	sysClfs     = "clfs"     // clfs mounted on a fresh home
)

var allSystems = []string{sysNative, sysLoopback, sysClfs}

// instance is one system set up from scratch for one phase of one run.
type instance struct {
	system string
	base   string // everything of this instance lives under it
	root   string // ROOT: where the workloads run
	mnt    string // mount point ("" for native)

	cmd     *exec.Cmd // the FUSE daemon (nil for native); a peer's sh -c MOUNTCMD
	pid     int
	peer    bool
	logPath string
	exited  chan struct{}
	waitErr error

	// ctl reads the FUSE request counters of a clfs mount; nil for the
	// other systems (and for clfs if its daemon serves none).
	ctl      *control.Client
	clfsHome string
	metaURL  string // the catalog of a clfs-etcd mount, dropped at stop
}

// start sets up system in a fresh directory named label.
func (h *harness) start(system, label string) (*instance, error) {
	in := &instance{system: system, base: filepath.Join(h.work, "runs", label)}
	if err := os.RemoveAll(in.base); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(in.base, 0o755); err != nil {
		return nil, err
	}
	var args, env []string
	p, isPeer := h.peer(system)
	switch {
	case isPeer:
		in.peer = true
		in.mnt = filepath.Join(in.base, "mnt")
		backing := filepath.Join(in.base, "backing")
		if err := os.Mkdir(backing, 0o755); err != nil {
			return nil, err
		}
		args = []string{"sh", "-c", p.Cmd}
		env = append(os.Environ(), "MNT="+in.mnt, "BACKING="+backing)
	case system == sysNative:
		in.root = filepath.Join(in.base, "data")
		return in, os.Mkdir(in.root, 0o755)
	case system == sysLoopback:
		data := filepath.Join(in.base, "data")
		in.mnt = filepath.Join(in.base, "mnt")
		if err := os.Mkdir(data, 0o755); err != nil {
			return nil, err
		}
		args = []string{h.bins.loopback, in.mnt, data}
	case system == sysClfs:
		in.mnt = filepath.Join(in.base, "mnt")
		in.clfsHome = filepath.Join(in.base, "home")
		args = []string{h.bins.clfs, "--home", in.clfsHome, "mount", in.mnt}
	case system == h.cfg.metaSystem:
		in.mnt = filepath.Join(in.base, "mnt")
		in.clfsHome = filepath.Join(in.base, "home")
		u, err := url.Parse(h.cfg.meta)
		if err != nil {
			return nil, err
		}
		u.Path = strings.TrimSuffix(u.Path, "/") + "/clfsbench-" + label
		in.metaURL = u.String()
		args = []string{h.bins.clfs, "--home", in.clfsHome, "--meta", in.metaURL, "mount", in.mnt}
	default:
		return nil, fmt.Errorf("unknown system %q", system)
	}
	in.root = in.mnt
	if err := os.Mkdir(in.mnt, 0o755); err != nil {
		return nil, err
	}
	in.logPath = filepath.Join(in.base, "daemon.log")
	logf, err := os.Create(in.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	in.cmd = exec.Command(args[0], args[1:]...)
	in.cmd.Env = env
	in.cmd.Stdout, in.cmd.Stderr = logf, logf
	// Own process group: a Ctrl-C on the terminal reaches the harness,
	// which unmounts in order, not the daemons under a running tool. If
	// the harness dies, the daemons get SIGTERM and unmount themselves.
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if h.verbose {
		prefix := ""
		if isPeer {
			prefix = shellJoin(env[len(env)-2:]) + " "
		}
		h.logf("    $ %s%s", prefix, shellJoin(args))
	}
	if err := in.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", system, err)
	}
	in.pid = in.cmd.Process.Pid
	in.exited = make(chan struct{})
	go func() {
		in.waitErr = in.cmd.Wait()
		close(in.exited)
	}()
	h.addLive(in)

	deadline := time.Now().Add(h.cfg.mountTimeout)
	for !mountinfoHas(in.mnt) {
		select {
		case <-in.exited:
			h.removeLive(in)
			if isPeer {
				// A command that forks its daemon into the background
				// exits 0 here: the harness could not stop that daemon.
				return nil, fmt.Errorf("peer %s: the mount command exited (%v) before %s was a mount point; "+
					"it must mount and stay in the foreground%s", system, exitString(in.waitErr), in.mnt, in.logTail())
			}
			return nil, fmt.Errorf("%s daemon exited before mounting (%v)%s", system, in.waitErr, in.logTail())
		case <-h.ctx.Done():
			return nil, errors.Join(h.ctx.Err(), h.stop(in))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			what := system
			if isPeer {
				what = "peer " + system
			}
			return nil, errors.Join(fmt.Errorf("%s did not mount %s within %v%s", what, in.mnt, h.cfg.mountTimeout, in.logTail()), h.stop(in))
		}
	}
	if system == sysClfs || system == h.cfg.metaSystem {
		h.dialCounters(in)
	}
	return in, nil
}

func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// logTail returns the end of the daemon's log, for error messages.
func (in *instance) logTail() string {
	if in.logPath == "" {
		return ""
	}
	data, err := os.ReadFile(in.logPath)
	if err != nil || len(strings.TrimSpace(string(data))) == 0 {
		return ""
	}
	if len(data) > 3000 {
		data = data[len(data)-3000:]
	}
	what := "daemon log"
	if in.peer {
		what = "mount command's output"
	}
	return "\n    " + what + " (" + in.logPath + "):\n      " +
		strings.ReplaceAll(strings.TrimSpace(string(data)), "\n", "\n      ")
}

// stop unmounts and ends the daemon (SIGTERM: both daemons unmount cleanly
// and exit 0), falling back to fusermount3 -u, umount -l and SIGKILL, then
// removes the instance's directory. It reports a daemon that did not exit
// cleanly.
func (h *harness) stop(in *instance) error {
	defer h.removeLive(in)
	if in.ctl != nil {
		in.ctl.Close()
		in.ctl = nil
	}
	if in.peer {
		return h.stopPeer(in)
	}
	var errs []error
	if in.cmd != nil {
		_ = syscall.Kill(in.pid, syscall.SIGTERM)
		clean := true
		select {
		case <-in.exited:
		case <-time.After(30 * time.Second):
			clean = false
			errs = append(errs, fmt.Errorf("%s daemon did not exit within 30 s of SIGTERM", in.system))
		}
		if mountinfoHas(in.mnt) {
			clean = false
			errs = append(errs, fmt.Errorf("%s still mounted after its daemon's exit", in.mnt))
			_ = exec.Command("fusermount3", "-u", in.mnt).Run()
			if mountinfoHas(in.mnt) {
				_ = exec.Command("umount", "-l", in.mnt).Run()
			}
		}
		select {
		case <-in.exited:
		default:
			_ = syscall.Kill(in.pid, syscall.SIGKILL)
			select {
			case <-in.exited:
			case <-time.After(10 * time.Second):
				errs = append(errs, fmt.Errorf("%s daemon (pid %d) survives SIGKILL", in.system, in.pid))
			}
		}
		if clean && in.waitErr != nil {
			errs = append(errs, fmt.Errorf("%s daemon exited with %v after SIGTERM", in.system, in.waitErr))
		}
	}
	if in.metaURL != "" && !h.cfg.keep {
		if err := dropCatalog(in.metaURL); err != nil {
			errs = append(errs, err)
		}
	}
	return h.cleanUp(in, errs)
}

func (h *harness) addLive(in *instance) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live[in] = true
}

func (h *harness) removeLive(in *instance) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.live, in)
}

// stopAll stops every instance still running (on error or interrupt).
func (h *harness) stopAll() error {
	h.mu.Lock()
	var live []*instance
	for in := range h.live {
		live = append(live, in)
	}
	h.mu.Unlock()
	var errs []error
	for _, in := range live {
		errs = append(errs, h.stop(in))
	}
	return errors.Join(errs...)
}

// stopPeer unmounts a peer (umount, else umount -l), gives its command a
// moment to exit as FUSE daemons do once unmounted, then ends its process
// group: SIGTERM, and SIGKILL 10 s later. How the command exits is its
// own business; a mount left behind or a process that survives is an
// error.
func (h *harness) stopPeer(in *instance) error {
	var errs []error
	grace := time.Duration(0) // never mounted: nothing to wait for
	if mountinfoHas(in.mnt) {
		grace = 5 * time.Second
		if out, err := exec.Command("umount", in.mnt).CombinedOutput(); err != nil {
			h.logf("clfsbench: umount %s: %v %s; detaching it (umount -l)", in.mnt, err, strings.TrimSpace(string(out)))
			if out, err := exec.Command("umount", "-l", in.mnt).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("umount -l %s: %v %s", in.mnt, err, strings.TrimSpace(string(out))))
			}
		}
	}
	select {
	case <-in.exited:
	case <-time.After(grace):
		// The group is the command's own (Setpgid): sh and whatever it
		// started, and nothing else.
		_ = syscall.Kill(-in.pid, syscall.SIGTERM)
		select {
		case <-in.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-in.pid, syscall.SIGKILL)
			select {
			case <-in.exited:
			case <-time.After(10 * time.Second):
				errs = append(errs, fmt.Errorf("peer %s (pid %d) survives SIGKILL", in.system, in.pid))
			}
		}
	}
	// Children the command left in its group (a shell without exec) go
	// with it.
	_ = syscall.Kill(-in.pid, syscall.SIGKILL)
	return h.cleanUp(in, errs)
}

// cleanUp ends a stop: a mount still in place keeps its base directory
// (removing files under a live mount would remove them from the system
// measured), and the daemon's last log lines go with the last error.
func (h *harness) cleanUp(in *instance, errs []error) error {
	if mountinfoHas(in.mnt) {
		errs = append(errs, fmt.Errorf("cannot unmount %s: left in place", in.mnt))
		return fmt.Errorf("%w%s", errors.Join(errs...), in.logTail())
	}
	if len(errs) > 0 {
		errs[len(errs)-1] = fmt.Errorf("%w%s", errs[len(errs)-1], in.logTail())
	}
	if !h.cfg.keep {
		if err := os.RemoveAll(in.base); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dropCatalog deletes a clfs-etcd run's catalog, whose daemon has exited.
func dropCatalog(url string) error {
	if err := sessionmgr.DropCatalog(context.Background(), url); err != nil {
		return fmt.Errorf("drop the run's catalog %s: %w", sessionmgr.RedactCatalogURL(url), err)
	}
	return nil
}
