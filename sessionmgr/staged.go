package sessionmgr

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"clfs/meta"
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

// UploadOptions says how a staged file starts.
type UploadOptions struct {
	// FromCommitted starts from a copy of the item's committed file of the
	// same name (append, in-place and partial writes); otherwise empty.
	FromCommitted bool
}

// OpenUpload returns the staged file of a PUSH file added to an ACTIVE
// session, creating it on first use. Callers Close it when done with it;
// Finish ends the transfer.
func (m *Manager) OpenUpload(ctx context.Context, sessionID, name string, opts UploadOptions) (*StagedFile, error) {
	if err := m.refuseIfReadOnly("upload file"); err != nil {
		return nil, err
	}
	var s *meta.UpdateSession
	var rec *meta.UpdateSessionFile
	var root, committedPath string
	var committedBytes []byte
	committedInline := false
	err := m.store.View(func(tx *meta.Tx) error {
		var err error
		if s, err = m.updateRec(tx, sessionID); err != nil {
			return err
		}
		if _, err := next(updateTransitions, updateLabel(s.UUID), updateState(s), opTransfer); err != nil {
			return err
		}
		rec, err = tx.UpdateSessionFile(s.ID, name)
		if errors.Is(err, meta.ErrNotFound) || (err == nil && rec.Removed) {
			return errorf(KindInvalidArgument, "file %q was not added to %s", name, updateLabel(s.UUID))
		}
		if err != nil {
			return err
		}
		if rec.SourceType == SourcePull {
			return errorf(KindInvalidArgument, "file %q of %s is pulled by the server from its source endpoint; it takes no upload", name, updateLabel(s.UUID))
		}
		it, err := tx.Item(s.ItemID)
		if err != nil {
			return err
		}
		lib, err := tx.Library(it.LibraryID)
		if err != nil {
			return err
		}
		if root, err = m.backingRoot(tx, lib.BackingID); err != nil {
			return err
		}
		if opts.FromCommitted {
			f, err := tx.File(it.ID, name)
			if err == nil {
				k := meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256}
				if b, err := tx.InlineContent(k); err == nil {
					committedBytes, committedInline = b, true
					return nil
				} else if !errors.Is(err, meta.ErrNotFound) {
					return err
				}
				r, err := m.backingRoot(tx, f.BackingID)
				if err != nil {
					return err
				}
				committedPath = contentPath(r, f.SHA256)
			} else if !errors.Is(err, meta.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ls := m.liveFor(s.ID)
	m.mu.Lock()
	if sf := ls.uploads[name]; sf != nil {
		sf.mu.Lock()
		sf.opens++
		sf.mu.Unlock()
		m.mu.Unlock()
		ls.handles.Add(1)
		m.touch(ls)
		return sf, nil
	}
	m.mu.Unlock()

	requested, _ := normalizeChecksum(checksumOf(rec.Requested))
	if !committedInline {
		committedBytes = nil
	} else if committedBytes == nil {
		committedBytes = []byte{}
	}
	n, err := m.store.NextID()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(stagingDir(root, s.UUID), strconv.FormatUint(n, 10))
	sf, err := m.newStagedFile(ls, s.ID, name, path, requested, committedPath, committedBytes)
	if err != nil {
		return nil, err
	}
	if rec.ExpectedSize != nil {
		sf.limit, sf.hasLimit = *rec.ExpectedSize, true
	}
	if other, err := m.registerUpload(ls, s.UUID, sf); other != nil {
		// Lost a race with another opener.
		return m.OpenUpload(ctx, sessionID, name, opts)
	} else if err != nil {
		return nil, err
	}
	var previous string // an earlier upload of the file, which this one restarts
	err = m.store.UpdateBuffered(func(tx *meta.Tx) error {
		r, err := tx.UpdateSessionFile(s.ID, name)
		if err != nil {
			return err
		}
		previous = r.Staging
		r.Status = string(TransferTransferring)
		r.ErrorMessage = ""
		r.Staging = sf.path
		return tx.PutUpdateSessionFile(r)
	})
	if err != nil {
		sf.Close()
		m.discardUpload(s.ID, name)
		return nil, err
	}
	if previous != "" && previous != sf.path {
		os.Remove(previous)
	}
	return sf, nil
}

func checksumOf(c *meta.Checksum) *ChecksumInfo {
	if c == nil {
		return nil
	}
	return &ChecksumInfo{Algorithm: c.Algorithm, Checksum: c.Value}
}

// registerUpload makes sf the session's live upload of its name. It
// returns the upload another opener registered first instead (sf is then
// dropped), or an error if the session ended meanwhile.
func (m *Manager) registerUpload(ls *liveSession, sessionUUID string, sf *StagedFile) (*StagedFile, error) {
	m.mu.Lock()
	if other := ls.uploads[sf.name]; other != nil || ls.ended.Load() {
		m.mu.Unlock()
		sf.discard()
		if other == nil {
			return nil, &StateError{Session: updateLabel(sessionUUID), Op: opTransfer, State: StateCanceled}
		}
		return other, nil
	}
	ls.uploads[sf.name] = sf
	m.mu.Unlock()
	ls.handles.Add(1)
	m.touch(ls)
	return nil, nil
}

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

// sealedUpload is a staged file whose bytes are final: hashed, on disk
// and synced (or in memory, for a small file), no longer writable.
type sealedUpload struct {
	staging     string // the upload's staging path: its identity in records
	size        int64
	sha         []byte
	requested   string // hex digest in the client's algorithm
	inMemory    bool
	inline      []byte // the bytes, when inMemory
	transferred int64
	err         error // reading or syncing the staged bytes failed
}

// seal ends writing: the bytes are hashed and made durable, the upload
// leaves the session's live uploads and gives back its handles. It fails
// only if the upload is no longer usable (session ended); I/O errors are
// in the result, for the verdict.
func (sf *StagedFile) seal() (*sealedUpload, error) {
	m := sf.m
	sf.mu.Lock()
	if err := sf.usable(); err != nil {
		sf.mu.Unlock()
		return nil, err
	}
	up := &sealedUpload{staging: sf.path, size: sf.size, inMemory: sf.f == nil, transferred: sf.transferred.Load()}
	if up.inMemory {
		up.inline = sf.mem[:sf.size]
		up.sha, up.requested = digest(sf.requested, up.inline)
	} else {
		up.sha, up.requested, up.err = sf.finalHashes()
		if up.err == nil {
			if err := sf.f.Sync(); err != nil {
				up.err = storageErr("sync staging", err)
			}
		}
	}
	if sf.failure != nil {
		up.err = sf.failure
	}
	sf.closeFileLocked()
	// The bytes now belong to up: the budget is given back, the buffer
	// is not reused.
	sf.m.stagedMem.Add(-int64(len(sf.mem)))
	sf.mem = nil
	ls := sf.ls
	sf.mu.Unlock()

	m.mu.Lock()
	if ls.uploads[sf.name] == sf {
		delete(ls.uploads, sf.name)
	}
	m.mu.Unlock()
	m.touch(ls) // as in Close
	ls.handles.Add(-int32(sf.opensLeft()))
	return up, nil
}

// Finish ends the transfer: the staged bytes are hashed, made durable and
// checked against the size and checksum the client declared. The file is
// then READY, or ERROR with the reason, which is also returned.
func (sf *StagedFile) Finish(ctx context.Context) (*UpdateSessionFile, error) {
	m := sf.m
	up, err := sf.seal()
	if err != nil {
		return nil, err
	}
	sid, path, size, sha, requested, ioErr := sf.sessionID, up.staging, up.size, up.sha, up.requested, up.err
	inline, inMemory := up.inline, up.inMemory
	var info UpdateSessionFile
	var verdict error
	var owner string
	err = m.store.UpdateBuffered(func(tx *meta.Tx) error {
		s, err := tx.UpdateSession(sid)
		if err != nil {
			return err
		}
		owner = s.Owner
		op := opTransfer
		if sf.pull {
			op = opPull // may end while a complete waits for it
		}
		if _, err := next(updateTransitions, updateLabel(s.UUID), updateState(s), op); err != nil {
			return err
		}
		r, err := tx.UpdateSessionFile(s.ID, sf.name)
		if err != nil {
			return err
		}
		if r.Staging != path {
			return errorf(KindInvalidArgument, "file %q of %s was added again during its transfer", sf.name, updateLabel(s.UUID))
		}
		r.BytesTransferred = sf.transferred.Load()
		r.Size = size
		r.SHA256 = sha
		r.Inline = false
		verdict = judge(r, size, requested, ioErr)
		if verdict != nil {
			r.Status = string(TransferError)
			r.ErrorMessage = messageOf(verdict)
		} else {
			r.Status = string(TransferReady)
			r.ErrorMessage = ""
			if inMemory {
				r.Inline = true
				if err := tx.PutStagedBytes(s.ID, sf.name, inline); err != nil {
					return err
				}
			}
		}
		info = m.sessionFileInfo(s.ID, s.UUID, r)
		return tx.PutUpdateSessionFile(r)
	})

	if err == nil {
		// A READY file survives a restart: its bytes are synced above.
		err = m.syncFor(owner)
	}
	if err != nil {
		return nil, err
	}
	return &info, verdict
}

// Abort ends the transfer in ERROR for cause (the stream broke, a write
// was refused): the file cannot become READY from what was received.
func (sf *StagedFile) Abort(ctx context.Context, cause error) error {
	sf.mu.Lock()
	if sf.failure == nil {
		sf.failure = cause
	}
	sf.mu.Unlock()
	_, err := sf.Finish(ctx)
	return err
}

func (sf *StagedFile) opensLeft() int {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	n := sf.opens
	sf.opens = 0
	return n
}

// judge checks a received file against what the client declared.
func judge(r *meta.UpdateSessionFile, size int64, requested string, ioErr error) error {
	if errors.Is(ioErr, ErrSizeMismatch) { // a write past the declared size
		return ioErr
	}
	if ioErr != nil {
		return wrapf(KindError, ioErr, "file %q: %v", r.Name, ioErr)
	}
	if r.ExpectedSize != nil && *r.ExpectedSize != size {
		return wrapf(KindInvalidArgument, ErrSizeMismatch, "file %q: size mismatch: expected %d bytes, received %d", r.Name, *r.ExpectedSize, size)
	}
	if r.Requested != nil && r.Requested.Value != requested {
		return wrapf(KindInvalidArgument, ErrChecksumMismatch, "file %q: %s checksum mismatch: expected %s, received %s", r.Name, r.Requested.Algorithm, r.Requested.Value, requested)
	}
	return nil
}

// finalHashes completes the running hashes, reading from the file whatever
// was not hashed on the way in.
func (sf *StagedFile) finalHashes() (sha []byte, requested string, err error) {
	if sf.hashed < sf.size {
		r := io.NewSectionReader(sf.f, sf.hashed, sf.size-sf.hashed)
		buf := make([]byte, 1<<20)
		for {
			n, rerr := r.Read(buf)
			if n > 0 {
				sf.pipe.write(buf[:n])
				sf.hashed += int64(n)
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return nil, "", storageErr("read staging", rerr)
			}
		}
	}
	sha, requested = sf.pipe.sums()
	return sha, requested, nil
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

// discardUpload drops a live staged file of a session, if any.
func (m *Manager) discardUpload(sessionID uint64, name string) {
	m.mu.Lock()
	var sf *StagedFile
	if ls := m.live[sessionID]; ls != nil {
		sf = ls.uploads[name]
		delete(ls.uploads, name)
	}
	m.mu.Unlock()
	if sf != nil {
		sf.ls.handles.Add(-int32(sf.opensLeft()))
		sf.discard()
	}
}

// hashPipe feeds SHA-256 (and the client's algorithm, if any) on its own
// goroutine. Buffers are copied in, so memory is bounded by the channel
// depth times the write size, not by the file size.
type hashPipe struct {
	ch        chan []byte
	done      chan struct{}
	sha       hash.Hash
	requested hash.Hash
	stopOnce  sync.Once

	writeback       func(off, n int64)
	hashed, flushed int64 // owned by the pipe's goroutine
}

// writebackChunk is how many hashed bytes accumulate before writeback of
// them is started.
const writebackChunk = 8 << 20

const hashPipeDepth = 8

var hashBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

func newHashPipe(requested *ChecksumInfo, writeback func(off, n int64)) *hashPipe {
	p := &hashPipe{ch: make(chan []byte, hashPipeDepth), done: make(chan struct{}), sha: sha256.New(), writeback: writeback}
	if requested != nil && requested.Algorithm != AlgSHA256 {
		p.requested = checksumAlgorithms[requested.Algorithm].new()
	}
	go p.run()
	return p
}

func (p *hashPipe) run() {
	defer close(p.done)
	for b := range p.ch {
		p.sha.Write(b)
		if p.requested != nil {
			p.requested.Write(b)
		}
		p.hashed += int64(len(b))
		if p.writeback != nil && p.hashed-p.flushed >= writebackChunk {
			p.writeback(p.flushed, p.hashed-p.flushed)
			p.flushed = p.hashed
		}
		b = b[:0]
		hashBufPool.Put(&b)
	}
}

func (p *hashPipe) write(b []byte) {
	for len(b) > 0 {
		bp := hashBufPool.Get().(*[]byte)
		n := min(len(b), cap(*bp))
		c := append((*bp)[:0], b[:n]...)
		p.ch <- c
		b = b[n:]
	}
}

func (p *hashPipe) stop() {
	p.stopOnce.Do(func() { close(p.ch) })
	<-p.done
}

// sums stops the pipe and returns the SHA-256 and, in hex, the digest of
// the client's algorithm (SHA-256's own when that is what it asked for).
func (p *hashPipe) sums() ([]byte, string) {
	p.stop()
	sha := p.sha.Sum(nil)
	if p.requested == nil {
		return sha, fmt.Sprintf("%x", sha)
	}
	return sha, fmt.Sprintf("%x", p.requested.Sum(nil))
}

// digest is sums for bytes at hand: the SHA-256 and, in hex, the digest of
// the client's algorithm.
func digest(requested *ChecksumInfo, b []byte) ([]byte, string) {
	sha := sha256.Sum256(b)
	if requested == nil || requested.Algorithm == AlgSHA256 {
		return sha[:], fmt.Sprintf("%x", sha)
	}
	h := checksumAlgorithms[requested.Algorithm].new()
	h.Write(b)
	return sha[:], fmt.Sprintf("%x", h.Sum(nil))
}
