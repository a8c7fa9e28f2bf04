package fs

import (
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Interrupts.
//
// The kernel sends INTERRUPT for a request whose process receives any
// signal it does not ignore, and go-fuse then ends the request's context.
// Most such signals are harmless: SIGCHLD, SIGWINCH, a profiler's SIGPROF,
// and the Go runtime's SIGURG, which preempts goroutines of every Go
// program under load. The process handles them and expects its open(2) or
// stat(2) to go on (SA_RESTART), so an EINTR for each would break it (a
// fatal signal needs no answer: the kernel abandons the request).
//
// So an interrupt ends the context sessionmgr sees only if the request is
// still running interruptGrace later: a quick request finishes as if
// nothing happened, and one stuck retrying a catalog transaction (etcd
// without quorum, a hot key) stops with EINTR rather than running its
// retries out.

// interruptGrace is how long an interrupted request runs on before its
// context ends.
const interruptGrace = time.Second

// patientFS passes every request on with such a delayed cancel channel.
// go-fuse offers no hook for this short of wrapping every method. The
// watching goroutine costs about 0.5 µs and 272 bytes a request
// (BenchmarkPatient); an rsync'd file takes some 15 requests and 10 ms.
type patientFS struct {
	fuse.RawFileSystem
}

// patient returns a channel closed interruptGrace after cancel is, and
// a stop to call when the request is answered.
func patient(cancel <-chan struct{}) (<-chan struct{}, func()) {
	if cancel == nil {
		return nil, func() {}
	}
	delayed, done := make(chan struct{}), make(chan struct{})
	go func() {
		select {
		case <-cancel:
		case <-done:
			return
		}
		t := time.NewTimer(interruptGrace)
		defer t.Stop()
		select {
		case <-t.C:
			close(delayed)
		case <-done:
		}
	}()
	return delayed, func() { close(done) }
}

func (p *patientFS) Lookup(cancel <-chan struct{}, header *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Lookup(c, header, name, out)
}

func (p *patientFS) GetAttr(cancel <-chan struct{}, input *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.GetAttr(c, input, out)
}

func (p *patientFS) SetAttr(cancel <-chan struct{}, input *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.SetAttr(c, input, out)
}

func (p *patientFS) Mknod(cancel <-chan struct{}, input *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Mknod(c, input, name, out)
}

func (p *patientFS) Mkdir(cancel <-chan struct{}, input *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Mkdir(c, input, name, out)
}

func (p *patientFS) Unlink(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Unlink(c, header, name)
}

func (p *patientFS) Rmdir(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Rmdir(c, header, name)
}

func (p *patientFS) Rename(cancel <-chan struct{}, input *fuse.RenameIn, oldName string, newName string) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Rename(c, input, oldName, newName)
}

func (p *patientFS) Link(cancel <-chan struct{}, input *fuse.LinkIn, filename string, out *fuse.EntryOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Link(c, input, filename, out)
}

func (p *patientFS) Symlink(cancel <-chan struct{}, header *fuse.InHeader, pointedTo string, linkName string, out *fuse.EntryOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Symlink(c, header, pointedTo, linkName, out)
}

func (p *patientFS) Readlink(cancel <-chan struct{}, header *fuse.InHeader) ([]byte, fuse.Status) {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Readlink(c, header)
}

func (p *patientFS) Access(cancel <-chan struct{}, input *fuse.AccessIn) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Access(c, input)
}

func (p *patientFS) GetXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.GetXAttr(c, header, attr, dest)
}

func (p *patientFS) ListXAttr(cancel <-chan struct{}, header *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.ListXAttr(c, header, dest)
}

func (p *patientFS) SetXAttr(cancel <-chan struct{}, input *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.SetXAttr(c, input, attr, data)
}

func (p *patientFS) RemoveXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.RemoveXAttr(c, header, attr)
}

func (p *patientFS) Create(cancel <-chan struct{}, input *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Create(c, input, name, out)
}

func (p *patientFS) Tmpfile(cancel <-chan struct{}, input *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Tmpfile(c, input, out)
}

func (p *patientFS) Open(cancel <-chan struct{}, input *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Open(c, input, out)
}

func (p *patientFS) Read(cancel <-chan struct{}, input *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Read(c, input, buf)
}

func (p *patientFS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Lseek(c, in, out)
}

func (p *patientFS) GetLk(cancel <-chan struct{}, input *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.GetLk(c, input, out)
}

func (p *patientFS) SetLk(cancel <-chan struct{}, input *fuse.LkIn) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.SetLk(c, input)
}

func (p *patientFS) SetLkw(cancel <-chan struct{}, input *fuse.LkIn) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.SetLkw(c, input)
}

func (p *patientFS) Release(cancel <-chan struct{}, input *fuse.ReleaseIn) {
	c, stop := patient(cancel)
	defer stop()
	p.RawFileSystem.Release(c, input)
}

func (p *patientFS) Write(cancel <-chan struct{}, input *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Write(c, input, data)
}

func (p *patientFS) Writev(cancel <-chan struct{}, input *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Writev(c, input, data)
}

func (p *patientFS) CopyFileRange(cancel <-chan struct{}, input *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.CopyFileRange(c, input)
}

func (p *patientFS) Ioctl(cancel <-chan struct{}, input *fuse.IoctlIn, inbuf []byte, output *fuse.IoctlOut, outbuf []byte) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Ioctl(c, input, inbuf, output, outbuf)
}

func (p *patientFS) Flush(cancel <-chan struct{}, input *fuse.FlushIn) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Flush(c, input)
}

func (p *patientFS) Fsync(cancel <-chan struct{}, input *fuse.FsyncIn) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Fsync(c, input)
}

func (p *patientFS) Fallocate(cancel <-chan struct{}, input *fuse.FallocateIn) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Fallocate(c, input)
}

func (p *patientFS) OpenDir(cancel <-chan struct{}, input *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.OpenDir(c, input, out)
}

func (p *patientFS) ReadDir(cancel <-chan struct{}, input *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.ReadDir(c, input, out)
}

func (p *patientFS) ReadDirPlus(cancel <-chan struct{}, input *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.ReadDirPlus(c, input, out)
}

func (p *patientFS) FsyncDir(cancel <-chan struct{}, input *fuse.FsyncIn) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.FsyncDir(c, input)
}

func (p *patientFS) StatFs(cancel <-chan struct{}, input *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.StatFs(c, input, out)
}

func (p *patientFS) Statx(cancel <-chan struct{}, input *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	c, stop := patient(cancel)
	defer stop()
	return p.RawFileSystem.Statx(c, input, out)
}
