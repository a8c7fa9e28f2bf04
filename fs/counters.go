package fs

import (
	"sync/atomic"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Counters counts the requests the kernel sends, by opcode, so that a
// benchmark (and `clfs counters`) can see the round trips a workload costs
// per file: a change that adds a GETATTR to every close shows as a number,
// not only as a slower run.
//
// countingFS sits outermost, above the flush filter and go-fuse's node
// layer, so it sees every request the server dispatches, including those
// answered without reaching a node (a FLUSH passed over, a GETXATTR the
// node layer answers). Requests go-fuse answers itself and never
// dispatches (INIT, INTERRUPT, NOTIFY_REPLY, DESTROY) are not counted;
// BATCH_FORGET counts one FORGET per node. Each count is one atomic add on
// its own cache line.
type Counters struct {
	n [numOps]counter
}

type counter struct {
	atomic.Uint64
	_ [56]byte // one cache line each: concurrent requests of different kinds do not share one
}

// op is an opcode as counted.
type op int

const (
	opLookup op = iota
	opForget
	opGetattr
	opSetattr
	opMknod
	opMkdir
	opUnlink
	opRmdir
	opRename
	opLink
	opSymlink
	opReadlink
	opAccess
	opGetxattr
	opListxattr
	opSetxattr
	opRemovexattr
	opCreate
	opTmpfile
	opOpen
	opRead
	opLseek
	opGetlk
	opSetlk
	opSetlkw
	opRelease
	opWrite
	opCopyFileRange
	opIoctl
	opFlush
	opFsync
	opFallocate
	opOpendir
	opReaddir
	opReaddirplus
	opReleasedir
	opFsyncdir
	opStatfs
	opStatx
	numOps
)

// opNames are the kernel's names of the opcodes (include/uapi/linux/fuse.h
// without FUSE_), as go-fuse's debug trace prints them.
var opNames = [numOps]string{
	opLookup: "LOOKUP", opForget: "FORGET", opGetattr: "GETATTR", opSetattr: "SETATTR",
	opMknod: "MKNOD", opMkdir: "MKDIR", opUnlink: "UNLINK", opRmdir: "RMDIR", opRename: "RENAME",
	opLink: "LINK", opSymlink: "SYMLINK", opReadlink: "READLINK", opAccess: "ACCESS",
	opGetxattr: "GETXATTR", opListxattr: "LISTXATTR", opSetxattr: "SETXATTR", opRemovexattr: "REMOVEXATTR",
	opCreate: "CREATE", opTmpfile: "TMPFILE", opOpen: "OPEN", opRead: "READ", opLseek: "LSEEK",
	opGetlk: "GETLK", opSetlk: "SETLK", opSetlkw: "SETLKW", opRelease: "RELEASE", opWrite: "WRITE",
	opCopyFileRange: "COPY_FILE_RANGE", opIoctl: "IOCTL", opFlush: "FLUSH", opFsync: "FSYNC",
	opFallocate: "FALLOCATE", opOpendir: "OPENDIR", opReaddir: "READDIR", opReaddirplus: "READDIRPLUS",
	opReleasedir: "RELEASEDIR", opFsyncdir: "FSYNCDIR", opStatfs: "STATFS", opStatx: "STATX",
}

func (c *Counters) add(o op) { c.n[o].Add(1) }

// Snapshot returns the counts so far, by opcode name; opcodes never seen
// are left out.
func (c *Counters) Snapshot() map[string]uint64 {
	out := map[string]uint64{}
	for i := range c.n {
		if v := c.n[i].Load(); v > 0 {
			out[opNames[i]] = v
		}
	}
	return out
}

// countingFS counts each request, then passes it on.
type countingFS struct {
	fuse.RawFileSystem
	c *Counters
}

var _ fuse.RawFileSystem = (*countingFS)(nil)

func (f *countingFS) Lookup(cancel <-chan struct{}, header *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	f.c.add(opLookup)
	return f.RawFileSystem.Lookup(cancel, header, name, out)
}

func (f *countingFS) Forget(nodeid, nlookup uint64) {
	f.c.add(opForget)
	f.RawFileSystem.Forget(nodeid, nlookup)
}

func (f *countingFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	f.c.add(opGetattr)
	return f.RawFileSystem.GetAttr(cancel, in, out)
}

func (f *countingFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	f.c.add(opSetattr)
	return f.RawFileSystem.SetAttr(cancel, in, out)
}

func (f *countingFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	f.c.add(opMknod)
	return f.RawFileSystem.Mknod(cancel, in, name, out)
}

func (f *countingFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	f.c.add(opMkdir)
	return f.RawFileSystem.Mkdir(cancel, in, name, out)
}

func (f *countingFS) Unlink(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	f.c.add(opUnlink)
	return f.RawFileSystem.Unlink(cancel, header, name)
}

func (f *countingFS) Rmdir(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	f.c.add(opRmdir)
	return f.RawFileSystem.Rmdir(cancel, header, name)
}

func (f *countingFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	f.c.add(opRename)
	return f.RawFileSystem.Rename(cancel, in, oldName, newName)
}

func (f *countingFS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	f.c.add(opLink)
	return f.RawFileSystem.Link(cancel, in, name, out)
}

func (f *countingFS) Symlink(cancel <-chan struct{}, header *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	f.c.add(opSymlink)
	return f.RawFileSystem.Symlink(cancel, header, target, name, out)
}

func (f *countingFS) Readlink(cancel <-chan struct{}, header *fuse.InHeader) ([]byte, fuse.Status) {
	f.c.add(opReadlink)
	return f.RawFileSystem.Readlink(cancel, header)
}

func (f *countingFS) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	f.c.add(opAccess)
	return f.RawFileSystem.Access(cancel, in)
}

func (f *countingFS) GetXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	f.c.add(opGetxattr)
	return f.RawFileSystem.GetXAttr(cancel, header, attr, dest)
}

func (f *countingFS) ListXAttr(cancel <-chan struct{}, header *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	f.c.add(opListxattr)
	return f.RawFileSystem.ListXAttr(cancel, header, dest)
}

func (f *countingFS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	f.c.add(opSetxattr)
	return f.RawFileSystem.SetXAttr(cancel, in, attr, data)
}

func (f *countingFS) RemoveXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string) fuse.Status {
	f.c.add(opRemovexattr)
	return f.RawFileSystem.RemoveXAttr(cancel, header, attr)
}

func (f *countingFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	f.c.add(opCreate)
	return f.RawFileSystem.Create(cancel, in, name, out)
}

func (f *countingFS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	f.c.add(opTmpfile)
	return f.RawFileSystem.Tmpfile(cancel, in, out)
}

func (f *countingFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	f.c.add(opOpen)
	return f.RawFileSystem.Open(cancel, in, out)
}

func (f *countingFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	f.c.add(opRead)
	return f.RawFileSystem.Read(cancel, in, buf)
}

func (f *countingFS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	f.c.add(opLseek)
	return f.RawFileSystem.Lseek(cancel, in, out)
}

func (f *countingFS) GetLk(cancel <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	f.c.add(opGetlk)
	return f.RawFileSystem.GetLk(cancel, in, out)
}

func (f *countingFS) SetLk(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	f.c.add(opSetlk)
	return f.RawFileSystem.SetLk(cancel, in)
}

func (f *countingFS) SetLkw(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	f.c.add(opSetlkw)
	return f.RawFileSystem.SetLkw(cancel, in)
}

func (f *countingFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	f.c.add(opRelease)
	f.RawFileSystem.Release(cancel, in)
}

// Write is what the server calls for a WRITE when Writev answers ENOSYS;
// Writev then did not count it.
func (f *countingFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	f.c.add(opWrite)
	return f.RawFileSystem.Write(cancel, in, data)
}

func (f *countingFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	n, st := f.RawFileSystem.Writev(cancel, in, data)
	if st != fuse.ENOSYS {
		f.c.add(opWrite)
	}
	return n, st
}

func (f *countingFS) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	f.c.add(opCopyFileRange)
	return f.RawFileSystem.CopyFileRange(cancel, in)
}

func (f *countingFS) Ioctl(cancel <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	f.c.add(opIoctl)
	return f.RawFileSystem.Ioctl(cancel, in, inbuf, out, outbuf)
}

func (f *countingFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	f.c.add(opFlush)
	return f.RawFileSystem.Flush(cancel, in)
}

func (f *countingFS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	f.c.add(opFsync)
	return f.RawFileSystem.Fsync(cancel, in)
}

func (f *countingFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	f.c.add(opFallocate)
	return f.RawFileSystem.Fallocate(cancel, in)
}

func (f *countingFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	f.c.add(opOpendir)
	return f.RawFileSystem.OpenDir(cancel, in, out)
}

func (f *countingFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	f.c.add(opReaddir)
	return f.RawFileSystem.ReadDir(cancel, in, out)
}

func (f *countingFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	f.c.add(opReaddirplus)
	return f.RawFileSystem.ReadDirPlus(cancel, in, out)
}

func (f *countingFS) ReleaseDir(in *fuse.ReleaseIn) {
	f.c.add(opReleasedir)
	f.RawFileSystem.ReleaseDir(in)
}

func (f *countingFS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	f.c.add(opFsyncdir)
	return f.RawFileSystem.FsyncDir(cancel, in)
}

func (f *countingFS) StatFs(cancel <-chan struct{}, in *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	f.c.add(opStatfs)
	return f.RawFileSystem.StatFs(cancel, in, out)
}

func (f *countingFS) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	f.c.add(opStatx)
	return f.RawFileSystem.Statx(cancel, in, out)
}
