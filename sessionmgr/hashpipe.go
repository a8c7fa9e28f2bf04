package sessionmgr

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"
)

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
