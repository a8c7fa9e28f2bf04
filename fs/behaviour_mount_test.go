package fs

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// mountDriver makes a process's system calls on a real mount of the
// filesystem over a fresh session manager.
type mountDriver struct {
	dir string
}

func newMountDriver(t *testing.T, m Manager) driver {
	return &mountDriver{dir: mountFS(t, m)}
}

// mountFS mounts the filesystem over m, as mount.Start does (the same
// cache timeouts and capabilities), and unmounts it at the end of the
// test. Without /dev/fuse it skips, loudly, unless CI is set: in CI a
// suite that does not mount has not run.
func mountFS(t *testing.T, m Manager) string {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("/dev/fuse: %v: the behaviour suite must run through a mount in CI", err)
		}
		t.Skipf("SKIPPED, NOT PASSED: the mount half of the behaviour suite needs /dev/fuse (%v); only the direct half ran", err)
	}
	dir := t.TempDir()
	fsys := New(m, Options{Logger: slog.New(slog.DiscardHandler)})
	timeout, negative := time.Hour, time.Duration(0)
	opts := &fusefs.Options{
		MountOptions: fuse.MountOptions{
			FsName:            "clfs-behaviour",
			Name:              "clfs",
			DirectMount:       os.Geteuid() == 0,
			MaxWrite:          1 << 20,
			ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC | fuse.CAP_DIRECT_IO_ALLOW_MMAP,
			DisableSplice:     true,
			Options:           []string{"noatime"},
		},
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &negative,
		NullPermissions: true,
	}
	server, err := fuse.NewServer(fsys.RawFileSystem(opts), dir, &opts.MountOptions)
	if err != nil {
		fsys.Close()
		t.Fatalf("mount %s: %v", dir, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		fsys.Close()
		t.Fatalf("mount %s: %v", dir, err)
	}
	t.Cleanup(func() {
		var err error
		for range 20 {
			if err = server.Unmount(); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond) // busy: a descriptor the test left open
		}
		if err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		server.Wait()
		fsys.Close()
	})
	return dir
}

// sysErr is the errno of a failed system call.
func sysErr(err error) error {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return err
}

func (d *mountDriver) path(p string) string { return filepath.Join(d.dir, p) }

func (d *mountDriver) Mkdir(path string, mode uint32) error {
	return sysErr(syscall.Mkdir(d.path(path), mode))
}

func (d *mountDriver) Rmdir(path string) error { return sysErr(syscall.Rmdir(d.path(path))) }

type mountWriter struct{ f *os.File }

func (w mountWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	return n, sysErr(err)
}

func (w mountWriter) Close() error { return sysErr(w.f.Close()) }

func (d *mountDriver) Create(path string, mode uint32) (fileWriter, error) {
	f, err := os.OpenFile(d.path(path), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(mode))
	if err != nil {
		return nil, sysErr(err)
	}
	return mountWriter{f}, nil
}

func (d *mountDriver) ReadFile(path string) ([]byte, error) {
	b, err := os.ReadFile(d.path(path))
	return b, sysErr(err)
}

func (d *mountDriver) ReadDir(path string) ([]string, error) {
	f, err := os.Open(d.path(path))
	if err != nil {
		return nil, sysErr(err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1) // in the directory's order, unlike os.ReadDir
	return names, sysErr(err)
}

func (d *mountDriver) Stat(path string) (*info, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(d.path(path), &st); err != nil {
		return nil, sysErr(err)
	}
	in := &info{Dir: st.Mode&syscall.S_IFMT == syscall.S_IFDIR, Mode: st.Mode & 0o7777, Mtime: time.Unix(st.Mtim.Unix())}
	if !in.Dir {
		in.Size = st.Size
	}
	return in, nil
}

func (d *mountDriver) Rename(from, to string, noReplace bool) error {
	var flags uint
	if noReplace {
		flags = unix.RENAME_NOREPLACE
	}
	return sysErr(unix.Renameat2(unix.AT_FDCWD, d.path(from), unix.AT_FDCWD, d.path(to), flags))
}

func (d *mountDriver) Remove(path string) error { return sysErr(syscall.Unlink(d.path(path))) }

func (d *mountDriver) Chmod(path string, mode uint32) error {
	return sysErr(syscall.Chmod(d.path(path), mode))
}

func (d *mountDriver) Chtimes(path string, mtime time.Time) error {
	return sysErr(os.Chtimes(d.path(path), mtime, mtime))
}

func (d *mountDriver) Truncate(path string, size int64) error {
	return sysErr(syscall.Truncate(d.path(path), size))
}
