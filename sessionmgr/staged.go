package sessionmgr

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// StagedFile is the bytes of one update-session file on their way in. It
// accepts writes at any offset. Every handle on the file shares one
// StagedFile.
//
// Small files stay in memory: up to the inline limit, within a budget
// shared by all uploads, they never touch the staging directory, and
// Finish stores them in the catalog, so that their commit is a single
// synced transaction. A write past the limit (or an fsync) spills them to
// the staging file at path. On file, writes that continue where the
// hashed prefix ends are hashed as they arrive, on another goroutine so
// hashing overlaps the copy; anything else is caught up at Finish.
type StagedFile struct {
	m         *Manager
	ls        *liveSession
	sessionID uint64
	name      string
	path      string
	requested *ChecksumInfo
	// limit is the size the client declared, when it did (API uploads):
	// a byte past it is refused at once, not after a long transfer.
	limit    int64
	hasLimit bool
	pull     bool // fetched by the server (a PULL file), not uploaded

	transferred atomic.Int64

	mu     sync.Mutex
	closed bool      // GUARDED_BY(mu); finished or discarded
	mem    []byte    // GUARDED_BY(mu); the bytes while in memory (f == nil)
	f      *os.File  // GUARDED_BY(mu); the staging file once spilled
	size   int64     // GUARDED_BY(mu)
	hashed int64     // GUARDED_BY(mu); bytes [0,hashed) are in pipe
	pipe   *hashPipe // GUARDED_BY(mu); nil while in memory
	opens  int       // GUARDED_BY(mu); handles not yet closed
	// failure, once set (a write past limit, a broken stream), is why
	// the transfer ends in ERROR whatever comes after.
	failure error // GUARDED_BY(mu)
}

const (
	// stagedMemoryBudget bounds the bytes staged in memory by all
	// uploads together; past it, uploads stage on disk from the start.
	stagedMemoryBudget = 64 << 20
)

// newStagedFile starts an upload in memory, seeded with the committed
// content (inline bytes or the blob at committedPath) if any. Its staging
// path is fixed by the caller, so that records name it before it exists.
func (m *Manager) newStagedFile(ls *liveSession, sessionID uint64, name, path string, requested *ChecksumInfo, committedPath string, committed []byte) (*StagedFile, error) {
	sf := &StagedFile{
		m: m, ls: ls, sessionID: sessionID, name: name, path: path, requested: requested, opens: 1,
	}
	if m.inlineLimit == 0 {
		sf.mu.Lock()
		err := sf.spillLocked()
		sf.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	switch {
	case committed != nil:
		if _, err := sf.WriteAt(committed, 0); err != nil {
			sf.discard()
			return nil, err
		}
		sf.transferred.Store(0)
	case committedPath != "":
		if err := sf.copyFrom(committedPath); err != nil {
			sf.discard()
			return nil, err
		}
	}
	return sf, nil
}

// spillLocked moves in-memory bytes to the staging file, which from then
// on holds them. Caller holds sf.mu.
func (sf *StagedFile) spillLocked() error {
	if sf.f != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(sf.path), 0o700); err != nil {
		return storageErr("create staging", err)
	}
	f, err := os.OpenFile(sf.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return storageErr("create staging", err)
	}
	// Only up to size: a truncation keeps the buffer, whose tail is
	// not content.
	data := sf.mem[:sf.size]
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		os.Remove(sf.path)
		return storageErr("write staging", err)
	}
	sf.f = f
	sf.pipe = sf.newPipe()
	sf.pipe.write(data)
	sf.hashed = sf.size
	sf.releaseMemLocked()
	return nil
}

// growMemLocked makes the in-memory bytes end at end, if the limit and
// the budget allow. Caller holds sf.mu.
func (sf *StagedFile) growMemLocked(end int64) bool {
	if end <= int64(len(sf.mem)) {
		return true
	}
	if end > sf.m.inlineLimit {
		return false
	}
	grow := end - int64(len(sf.mem))
	if sf.m.stagedMem.Add(grow) > stagedMemoryBudget {
		sf.m.stagedMem.Add(-grow)
		return false
	}
	sf.mem = append(sf.mem, make([]byte, grow)...)
	return true
}

func (sf *StagedFile) releaseMemLocked() {
	sf.m.stagedMem.Add(-int64(len(sf.mem)))
	sf.mem = nil
}

// copyFrom fills a fresh staged file with committed content, hashing it on
// the way so that appends keep the fast path.
func (sf *StagedFile) copyFrom(path string) error {
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open committed content: %w", err)
	}
	defer src.Close()
	buf := make([]byte, 1<<20)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := sf.WriteAt(buf[:n], sf.size); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read committed content: %w", rerr)
		}
	}
	sf.transferred.Store(0)
	return nil
}

// Name is the file's name in the item.
func (sf *StagedFile) Name() string { return sf.name }

// WriteAt writes p at off, growing the file as needed.
func (sf *StagedFile) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errorf(KindInvalidArgument, "negative offset %d", off)
	}
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if err := sf.usable(); err != nil {
		return 0, err
	}
	if sf.hasLimit && off+int64(len(p)) > sf.limit {
		sf.failure = wrapf(KindInvalidArgument, ErrSizeMismatch, "file %q: size mismatch: more than the %d bytes it was added with", sf.name, sf.limit)
		return 0, sf.failure
	}
	if sf.f == nil {
		end := off + int64(len(p))
		if sf.growMemLocked(end) {
			copy(sf.mem[off:], p)
			sf.size = max(sf.size, end)
			sf.transferred.Add(int64(len(p)))
			sf.m.touch(sf.ls)
			return len(p), nil
		}
		if err := sf.spillLocked(); err != nil {
			return 0, err
		}
	}
	n, err := sf.f.WriteAt(p, off)
	if n > 0 {
		sf.hashWrite(p[:n], off)
		sf.size = max(sf.size, off+int64(n))
		sf.transferred.Add(int64(n))
	}
	sf.m.touch(sf.ls)
	if err != nil {
		return n, storageErr("write staging", err)
	}
	return n, nil
}

// Write appends p, for streaming uploads.
func (sf *StagedFile) Write(p []byte) (int, error) {
	sf.mu.Lock()
	off := sf.size
	sf.mu.Unlock()
	return sf.WriteAt(p, off)
}

// ReadFrom streams r into the file at its end.
func (sf *StagedFile) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var total int64
	for {
		// Not io.ReadFull: it reports a short last read as
		// ErrUnexpectedEOF, which would hide the same error from r (an
		// HTTP body cut short) and make a broken stream look complete.
		n := 0
		var rerr error
		for n < len(buf) && rerr == nil {
			var k int
			k, rerr = r.Read(buf[n:])
			n += k
		}
		if n > 0 {
			w, err := sf.Write(buf[:n])
			total += int64(w)
			if err != nil {
				return total, err
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// hashWrite keeps the running hash in step with the file's prefix.
func (sf *StagedFile) hashWrite(p []byte, off int64) {
	switch {
	case off == sf.hashed:
		sf.pipe.write(p)
		sf.hashed += int64(len(p))
	case off < sf.hashed:
		// Bytes already hashed were overwritten: start over, Finish
		// hashes the whole file.
		sf.pipe.stop()
		sf.pipe = sf.newPipe()
		sf.hashed = 0
	}
}

// ReadAt reads the staged bytes (the writer's own view).
func (sf *StagedFile) ReadAt(p []byte, off int64) (int, error) {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if err := sf.usable(); err != nil {
		return 0, err
	}
	if sf.f == nil {
		if off >= sf.size {
			return 0, io.EOF
		}
		n := copy(p, sf.mem[off:sf.size])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	return sf.f.ReadAt(p, off)
}

// Truncate sets the staged size.
func (sf *StagedFile) Truncate(size int64) error {
	if size < 0 {
		return errorf(KindInvalidArgument, "negative size %d", size)
	}
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if err := sf.usable(); err != nil {
		return err
	}
	if sf.f == nil {
		if sf.growMemLocked(size) {
			// Shrinking keeps the buffer; bytes past size read as
			// zeros if it grows again.
			clear(sf.mem[min(size, int64(len(sf.mem))):])
			sf.size = size
			sf.m.touch(sf.ls)
			return nil
		}
		if err := sf.spillLocked(); err != nil {
			return err
		}
	}
	if err := sf.f.Truncate(size); err != nil {
		return storageErr("truncate staging", err)
	}
	if size < sf.hashed {
		sf.pipe.stop()
		sf.pipe = sf.newPipe()
		sf.hashed = 0
	}
	sf.size = size
	sf.m.touch(sf.ls)
	return nil
}

// Size is the staged size.
func (sf *StagedFile) Size() int64 {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	return sf.size
}

func (sf *StagedFile) usable() error {
	if sf.closed || sf.ls.ended.Load() {
		return &StateError{Session: "update session of file " + strconv.Quote(sf.name), Op: opTransfer, State: StateCanceled}
	}
	return nil
}

// sync makes the staged bytes durable.
func (sf *StagedFile) sync() error {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	if err := sf.usable(); err != nil {
		return err
	}
	// fsync(2) asks for the bytes on disk: in-memory bytes go to the
	// staging file first.
	if err := sf.spillLocked(); err != nil {
		return err
	}
	if err := sf.f.Sync(); err != nil {
		return storageErr("sync staging", err)
	}
	return nil
}

// Close releases one handle. The staged bytes stay with the session until
// Finish, a re-add, or the session's end.
func (sf *StagedFile) Close() error {
	sf.mu.Lock()
	if sf.opens > 0 {
		sf.opens--
		// An open handle kept the session alive and get reported
		// now + timeout; record activity before letting go of it, so
		// that promise holds.
		sf.m.touch(sf.ls)
		sf.ls.handles.Add(-1)
	}
	sf.mu.Unlock()
	return nil
}

func (sf *StagedFile) opensLeft() int {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	n := sf.opens
	sf.opens = 0
	return n
}

// discard drops the staged bytes (re-add, remove, session end).
func (sf *StagedFile) discard() {
	sf.mu.Lock()
	sf.closeFileLocked()
	sf.releaseMemLocked()
	sf.mu.Unlock()
	os.Remove(sf.path)
}

func (sf *StagedFile) closeFile() {
	sf.mu.Lock()
	sf.closeFileLocked()
	sf.mu.Unlock()
}

func (sf *StagedFile) closeFileLocked() {
	sf.closed = true
	// The pipe may still start writeback on the file: stop it first.
	if sf.pipe != nil {
		sf.pipe.stop()
	}
	if sf.f != nil {
		sf.f.Close()
		sf.f = nil
	}
}

// newPipe starts a hash pipe that also starts writeback of the bytes it
// has hashed, so that the fsync at Finish finds little left to write.
func (sf *StagedFile) newPipe() *hashPipe {
	fd := int(sf.f.Fd())
	return newHashPipe(sf.requested, func(off, n int64) {
		// A hint only: durability comes from the fsync at Finish.
		_ = unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
