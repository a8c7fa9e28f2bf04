package mount

// The operations TestPOSIXDifferential runs on both sides: each is a small
// value with a String for failure messages and a do that runs it on one
// side (a directory and its descriptor slots).

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// pdSlots is how many descriptors a sequence may hold at once.
const pdSlots = 3

// pdSide is one side of the comparison: a directory (native, or an item
// of the mount) and the descriptor held in each slot (-1: none).
type pdSide struct {
	label string
	dir   string
	mount bool // an item of a clfs mount: RELEASE is asynchronous
	fd    [pdSlots]int
}

func newPDSide(label, dir string, mount bool) *pdSide {
	s := &pdSide{label: label, dir: dir, mount: mount}
	for i := range s.fd {
		s.fd[i] = -1
	}
	return s
}

func (s *pdSide) path(name string) string { return filepath.Join(s.dir, name) }

// closeAll closes what a sequence left open (after a mismatch).
func (s *pdSide) closeAll() {
	for i, fd := range s.fd {
		if fd >= 0 {
			unix.Close(fd)
			s.fd[i] = -1
		}
	}
}

// pdRes is what an operation returned.
type pdRes struct {
	err  error // nil, a syscall.Errno, or one of the pdErr* below
	n    int   // bytes written
	data []byte
}

var (
	// errPDRange: an mmap write would reach past the end of the file
	// (the generator avoids it: touching it would be SIGBUS).
	errPDRange = errors.New("mmap write past the end of the file (not done)")
	// errPDFault: touching the mapping faulted (SIGBUS/SIGSEGV).
	errPDFault = errors.New("fault touching the mapping")
)

func (r pdRes) String() string {
	s := pdErrName(r.err)
	if r.n != 0 {
		s += fmt.Sprintf(" n=%d", r.n)
	}
	if r.data != nil {
		s += " data=" + pdShort(r.data)
	}
	return s
}

func pdErrName(err error) string {
	if err == nil {
		return "ok"
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
		return fmt.Sprintf("errno %d", int(e))
	}
	return err.Error()
}

func pdShort(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%d bytes %q...%q sha256:%s", len(b), b[:16], b[len(b)-8:], sha256Hex(b)[:12])
	}
	return fmt.Sprintf("%q", b)
}

// pdOp is one operation.
type pdOp interface {
	String() string
	kind() string   // the generator's name for it (CLFS_POSIXDIFF_SKIP)
	mutating() bool // sleep before it, so that times can move
	do(*pdSide) pdRes
}

func pdFlags(f int) string {
	var out []string
	switch f & unix.O_ACCMODE {
	case unix.O_RDONLY:
		out = append(out, "O_RDONLY")
	case unix.O_WRONLY:
		out = append(out, "O_WRONLY")
	default:
		out = append(out, "O_RDWR")
	}
	for _, x := range []struct {
		bit  int
		name string
	}{{unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"}, {unix.O_TRUNC, "O_TRUNC"}, {unix.O_APPEND, "O_APPEND"}} {
		if f&x.bit != 0 {
			out = append(out, x.name)
		}
	}
	return strings.Join(out, "|")
}

func pdName(n string) string {
	if len(n) > 20 {
		return fmt.Sprintf("%q...(%d bytes)", n[:8], len(n))
	}
	return fmt.Sprintf("%q", n)
}

type pdOpen struct {
	slot  int
	name  string
	flags int
	mode  uint32
}

func (o pdOpen) String() string {
	return fmt.Sprintf("fd%d = open(%s, %s, %04o)", o.slot, pdName(o.name), pdFlags(o.flags), o.mode)
}
func (pdOpen) kind() string   { return "open" }
func (pdOpen) mutating() bool { return true }
func (o pdOpen) do(s *pdSide) pdRes {
	if s.fd[o.slot] >= 0 {
		panic(fmt.Sprintf("harness: %v into an occupied slot", o))
	}
	fd, err := unix.Open(s.path(o.name), o.flags|unix.O_CLOEXEC, o.mode)
	if err == nil {
		s.fd[o.slot] = fd
	}
	return pdRes{err: err}
}

type pdClose struct{ slot int }

func (o pdClose) String() string { return fmt.Sprintf("close(fd%d)", o.slot) }
func (pdClose) kind() string     { return "close" }
func (pdClose) mutating() bool   { return true }
func (o pdClose) do(s *pdSide) pdRes {
	err := unix.Close(s.fd[o.slot])
	s.fd[o.slot] = -1 // Linux closes the descriptor even when close fails
	return pdRes{err: err}
}

type pdWrite struct {
	slot int
	data []byte
}

func (o pdWrite) String() string { return fmt.Sprintf("write(fd%d, %s)", o.slot, pdShort(o.data)) }
func (pdWrite) kind() string     { return "write" }
func (pdWrite) mutating() bool   { return true }
func (o pdWrite) do(s *pdSide) pdRes {
	n, err := unix.Write(s.fd[o.slot], o.data)
	return pdRes{err: err, n: n}
}

type pdPwrite struct {
	slot int
	off  int64
	data []byte
}

func (o pdPwrite) String() string {
	return fmt.Sprintf("pwrite(fd%d, %s, %d)", o.slot, pdShort(o.data), o.off)
}
func (pdPwrite) kind() string   { return "pwrite" }
func (pdPwrite) mutating() bool { return true }
func (o pdPwrite) do(s *pdSide) pdRes {
	n, err := unix.Pwrite(s.fd[o.slot], o.data, o.off)
	return pdRes{err: err, n: n}
}

type pdPread struct {
	slot int
	off  int64
	n    int
}

func (o pdPread) String() string { return fmt.Sprintf("pread(fd%d, %d, %d)", o.slot, o.n, o.off) }
func (pdPread) kind() string     { return "pread" }
func (pdPread) mutating() bool   { return false }
func (o pdPread) do(s *pdSide) pdRes {
	buf := make([]byte, o.n)
	n, err := unix.Pread(s.fd[o.slot], buf, o.off)
	if n < 0 {
		n = 0
	}
	return pdRes{err: err, data: buf[:n]}
}

type pdFtruncate struct {
	slot int
	size int64
}

func (o pdFtruncate) String() string { return fmt.Sprintf("ftruncate(fd%d, %d)", o.slot, o.size) }
func (pdFtruncate) kind() string     { return "ftruncate" }
func (pdFtruncate) mutating() bool   { return true }
func (o pdFtruncate) do(s *pdSide) pdRes {
	return pdRes{err: unix.Ftruncate(s.fd[o.slot], o.size)}
}

type pdTruncate struct {
	name string
	size int64
}

func (o pdTruncate) String() string { return fmt.Sprintf("truncate(%s, %d)", pdName(o.name), o.size) }
func (pdTruncate) kind() string     { return "truncate" }
func (pdTruncate) mutating() bool   { return true }
func (o pdTruncate) do(s *pdSide) pdRes {
	return pdRes{err: unix.Truncate(s.path(o.name), o.size)}
}

// pdTime is one of utimensat's two times: an explicit value, UTIME_NOW or
// UTIME_OMIT.
type pdTime unix.Timespec

var (
	pdNow  = pdTime{Nsec: unix.UTIME_NOW}
	pdOmit = pdTime{Nsec: unix.UTIME_OMIT}
)

// pdT is an explicit time, long ago (before 2020, so that the comparison
// recognises it as set explicitly and compares it to the nanosecond).
func pdT(k int) pdTime {
	return pdTime{Sec: 1_000_000_000 + int64(k)*100_003, Nsec: int64(k) * 1_111}
}

func (p pdTime) explicit() bool { return p.Nsec != unix.UTIME_NOW && p.Nsec != unix.UTIME_OMIT }

func (p pdTime) String() string {
	switch p.Nsec {
	case unix.UTIME_NOW:
		return "UTIME_NOW"
	case unix.UTIME_OMIT:
		return "UTIME_OMIT"
	}
	return pdTS(unix.Timespec(p))
}

func pdTS(ts unix.Timespec) string { return fmt.Sprintf("%d.%09d", ts.Sec, ts.Nsec) }

type pdUtimens struct {
	name         string
	atime, mtime pdTime
}

func (o pdUtimens) String() string {
	return fmt.Sprintf("utimensat(%s, atime=%v, mtime=%v)", pdName(o.name), o.atime, o.mtime)
}
func (pdUtimens) kind() string   { return "utimens" }
func (pdUtimens) mutating() bool { return true }
func (o pdUtimens) do(s *pdSide) pdRes {
	ts := []unix.Timespec{unix.Timespec(o.atime), unix.Timespec(o.mtime)}
	return pdRes{err: unix.UtimesNanoAt(unix.AT_FDCWD, s.path(o.name), ts, 0)}
}

type pdChmod struct {
	name string
	mode uint32
}

func (o pdChmod) String() string { return fmt.Sprintf("chmod(%s, %04o)", pdName(o.name), o.mode) }
func (pdChmod) kind() string     { return "chmod" }
func (pdChmod) mutating() bool   { return true }
func (o pdChmod) do(s *pdSide) pdRes {
	return pdRes{err: unix.Chmod(s.path(o.name), o.mode)}
}

type pdFchmod struct {
	slot int
	mode uint32
}

func (o pdFchmod) String() string { return fmt.Sprintf("fchmod(fd%d, %04o)", o.slot, o.mode) }
func (pdFchmod) kind() string     { return "fchmod" }
func (pdFchmod) mutating() bool   { return true }
func (o pdFchmod) do(s *pdSide) pdRes {
	return pdRes{err: unix.Fchmod(s.fd[o.slot], o.mode)}
}

type pdChown struct {
	name     string
	uid, gid int
}

func (o pdChown) String() string {
	return fmt.Sprintf("chown(%s, %d, %d)", pdName(o.name), o.uid, o.gid)
}
func (pdChown) kind() string   { return "chown" }
func (pdChown) mutating() bool { return true }
func (o pdChown) do(s *pdSide) pdRes {
	return pdRes{err: unix.Chown(s.path(o.name), o.uid, o.gid)}
}

type pdFchown struct {
	slot     int
	uid, gid int
}

func (o pdFchown) String() string { return fmt.Sprintf("fchown(fd%d, %d, %d)", o.slot, o.uid, o.gid) }
func (pdFchown) kind() string     { return "fchown" }
func (pdFchown) mutating() bool   { return true }
func (o pdFchown) do(s *pdSide) pdRes {
	return pdRes{err: unix.Fchown(s.fd[o.slot], o.uid, o.gid)}
}

type pdRename struct {
	from, to string
	flags    uint
}

func (o pdRename) String() string {
	if o.flags == unix.RENAME_NOREPLACE {
		return fmt.Sprintf("renameat2(%s, %s, RENAME_NOREPLACE)", pdName(o.from), pdName(o.to))
	}
	return fmt.Sprintf("rename(%s, %s)", pdName(o.from), pdName(o.to))
}
func (pdRename) kind() string   { return "rename" }
func (pdRename) mutating() bool { return true }
func (o pdRename) do(s *pdSide) pdRes {
	if o.flags == 0 {
		return pdRes{err: unix.Rename(s.path(o.from), s.path(o.to))}
	}
	return pdRes{err: unix.Renameat2(unix.AT_FDCWD, s.path(o.from), unix.AT_FDCWD, s.path(o.to), o.flags)}
}

type pdUnlink struct{ name string }

func (o pdUnlink) String() string { return fmt.Sprintf("unlink(%s)", pdName(o.name)) }
func (pdUnlink) kind() string     { return "unlink" }
func (pdUnlink) mutating() bool   { return true }
func (o pdUnlink) do(s *pdSide) pdRes {
	return pdRes{err: unix.Unlink(s.path(o.name))}
}

type pdRmdir struct{ name string }

func (o pdRmdir) String() string { return fmt.Sprintf("rmdir(%s)", pdName(o.name)) }
func (pdRmdir) kind() string     { return "rmdir" }
func (pdRmdir) mutating() bool   { return true }
func (o pdRmdir) do(s *pdSide) pdRes {
	return pdRes{err: unix.Rmdir(s.path(o.name))}
}

// pdDupClose: d = dup(fd); close(d). The result is dup's error, else
// close's.
type pdDupClose struct{ slot int }

func (o pdDupClose) String() string { return fmt.Sprintf("close(dup(fd%d))", o.slot) }
func (pdDupClose) kind() string     { return "dupclose" }
func (pdDupClose) mutating() bool   { return true }
func (o pdDupClose) do(s *pdSide) pdRes {
	d, err := unix.Dup(s.fd[o.slot])
	if err != nil {
		return pdRes{err: err}
	}
	return pdRes{err: unix.Close(d)}
}

type pdFstat struct{ slot int }

func (o pdFstat) String() string { return fmt.Sprintf("fstat(fd%d)", o.slot) }
func (pdFstat) kind() string     { return "fstat" }
func (pdFstat) mutating() bool   { return false }
func (o pdFstat) do(s *pdSide) pdRes {
	var st unix.Stat_t
	return pdRes{err: unix.Fstat(s.fd[o.slot], &st)}
}

type pdLstat struct{ name string }

func (o pdLstat) String() string { return fmt.Sprintf("lstat(%s)", pdName(o.name)) }
func (pdLstat) kind() string     { return "lstat" }
func (pdLstat) mutating() bool   { return false }
func (o pdLstat) do(s *pdSide) pdRes {
	var st unix.Stat_t
	return pdRes{err: unix.Lstat(s.path(o.name), &st)}
}

type pdFallocate struct {
	slot      int
	mode      uint32
	off, size int64
}

func (o pdFallocate) String() string {
	m := "0"
	if o.mode == unix.FALLOC_FL_KEEP_SIZE {
		m = "FALLOC_FL_KEEP_SIZE"
	}
	return fmt.Sprintf("fallocate(fd%d, %s, %d, %d)", o.slot, m, o.off, o.size)
}
func (pdFallocate) kind() string   { return "fallocate" }
func (pdFallocate) mutating() bool { return true }
func (o pdFallocate) do(s *pdSide) pdRes {
	return pdRes{err: unix.Fallocate(s.fd[o.slot], o.mode, o.off, o.size)}
}

// pdMmapWrite maps the whole file MAP_SHARED read-write, copies data in
// at off, msyncs and unmaps.
type pdMmapWrite struct {
	slot int
	off  int64
	data []byte
}

func (o pdMmapWrite) String() string {
	return fmt.Sprintf("mmap(fd%d, MAP_SHARED, PROT_READ|PROT_WRITE); copy %s at %d; msync; munmap", o.slot, pdShort(o.data), o.off)
}
func (pdMmapWrite) kind() string   { return "mmap" }
func (pdMmapWrite) mutating() bool { return true }
func (o pdMmapWrite) do(s *pdSide) (res pdRes) {
	fd := s.fd[o.slot]
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return pdRes{err: err}
	}
	if s.mount {
		// The page faults below are served by this very process: a
		// stop-the-world garbage collection while this thread waits in
		// one would stop the goroutines that answer it. SetGCPercent(-1)
		// returns once no collection is running.
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
	}
	size := int(st.Size)
	if size == 0 {
		size = 1 // mmap of length 0 is EINVAL on both sides: ask for a page
	}
	m, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return pdRes{err: err}
	}
	defer func() {
		if err := unix.Munmap(m); err != nil && res.err == nil {
			res = pdRes{err: err}
		}
	}()
	if o.off+int64(len(o.data)) > st.Size {
		return pdRes{err: errPDRange}
	}
	if !pdCopyNoFault(m[o.off:], o.data) {
		return pdRes{err: errPDFault}
	}
	return pdRes{err: unix.Msync(m, unix.MS_SYNC)}
}

// pdCopyNoFault copies, turning a fault on the mapping into false.
func pdCopyNoFault(dst, src []byte) (ok bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	copy(dst, src)
	return true
}
