package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Mounting at boot from /etc/fstab:
//
//	/var/lib/clfs  /mnt/clfs  fuse.clfs  defaults,allow_other  0 0
//
// mount(8) hands a fuse.TYPE line to mount.fuse3, which runs
// "clfs SOURCE MOUNTPOINT -o OPTIONS" and waits for it to exit, as FUSE
// daemons detach once mounted. fstabCall recognises that form; runFstab
// starts "clfs --home SOURCE mount MOUNTPOINT" detached and returns once
// the mount is up.

// fstabCall reports whether args are mount.fuse3's call.
func fstabCall(args []string) (home, mountpoint, options string, ok bool) {
	if len(args) != 3 && !(len(args) == 5 && args[3] == "-o") {
		return "", "", "", false
	}
	if !filepath.IsAbs(args[1]) || !filepath.IsAbs(args[2]) {
		return "", "", "", false
	}
	if len(args) == 5 {
		options = args[4]
	}
	return args[1], args[2], options, true
}

// fstabFlags maps mount options to clfs mount flags; generic mount options
// (rw, dev, suid, _netdev, ...) mean nothing to clfs and are ignored.
func fstabFlags(options string) ([]string, error) {
	var flags []string
	for _, o := range strings.Split(options, ",") {
		key, val, _ := strings.Cut(o, "=")
		switch key {
		case "ro":
			flags = append(flags, "--read-only")
		case "allow_other":
			flags = append(flags, "--allow-other")
		case "verify_reads":
			flags = append(flags, "--verify-reads")
		case "session_timeout":
			if _, err := time.ParseDuration(val); err != nil {
				return nil, fmt.Errorf("mount option session_timeout=%s: %v", val, err)
			}
			flags = append(flags, "--session-timeout", val)
		}
	}
	return flags, nil
}

func runFstab(home, mountpoint, options string) error {
	flags, err := fstabFlags(options)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	logPath := filepath.Join(home, "clfs-mount.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	args := append([]string{"--home", home, "mount"}, flags...)
	cmd := exec.Command(exe, append(args, mountpoint)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case err := <-exited:
			if err == nil {
				err = errors.New("exited before mounting")
			}
			return fmt.Errorf("clfs mount %s: %v (see %s)", mountpoint, err, logPath)
		case <-deadline:
			return fmt.Errorf("clfs mount %s: not mounted after 30s (see %s)", mountpoint, logPath)
		case <-time.After(50 * time.Millisecond):
			if isMountpoint(mountpoint) {
				return nil
			}
		}
	}
}

// isMountpoint reports whether dir is on another device than its parent.
func isMountpoint(dir string) bool {
	var st, parent syscall.Stat_t
	if syscall.Stat(dir, &st) != nil || syscall.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}
