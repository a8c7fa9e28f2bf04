package sessionmgr

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// Data-plane tests of StagedFile: whatever the order of writes and
// truncates, Finish must hash exactly the final bytes, and complete must
// commit exactly them.

// stagedModel applies the same operations to a StagedFile and to a plain
// buffer, the expected content.
type stagedModel struct {
	t    *testing.T
	sf   *StagedFile
	want []byte
}

func (s *stagedModel) writeAt(p []byte, off int64) {
	s.t.Helper()
	n, err := s.sf.WriteAt(p, off)
	if err != nil || n != len(p) {
		s.t.Fatalf("WriteAt(%d bytes, %d) = %d, %v", len(p), off, n, err)
	}
	if end := int(off) + len(p); end > len(s.want) {
		s.want = append(s.want, make([]byte, end-len(s.want))...)
	}
	copy(s.want[off:], p)
}

func (s *stagedModel) truncate(size int64) {
	s.t.Helper()
	if err := s.sf.Truncate(size); err != nil {
		s.t.Fatal(err)
	}
	if int(size) <= len(s.want) {
		s.want = s.want[:size]
	} else {
		s.want = append(s.want, make([]byte, int(size)-len(s.want))...)
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestStagedFileHashesFinalBytes(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	lib := e.library("lib")
	const mib = 1 << 20

	cases := []struct {
		name string
		ops  func(s *stagedModel, r *rand.Rand)
	}{
		{"empty", func(s *stagedModel, r *rand.Rand) {}},
		{"sequential small appends", func(s *stagedModel, r *rand.Rand) {
			for i := 0; i < 200; i++ {
				s.writeAt(randBytes(r, 1+r.IntN(100)), int64(len(s.want)))
			}
		}},
		// Bigger than the hash pipe's buffers and its 8 MiB writeback
		// chunk, so both paths run.
		{"sequential 9 MiB in odd chunks", func(s *stagedModel, r *rand.Rand) {
			for len(s.want) < 9*mib {
				s.writeAt(randBytes(r, 300_000+r.IntN(900_000)), int64(len(s.want)))
			}
		}},
		{"reverse order", func(s *stagedModel, r *rand.Rand) {
			const chunk, n = 4096, 64
			for i := n - 1; i >= 0; i-- {
				s.writeAt(randBytes(r, chunk), int64(i*chunk))
			}
		}},
		{"gap filled later", func(s *stagedModel, r *rand.Rand) {
			s.writeAt(randBytes(r, 1000), 0)
			s.writeAt(randBytes(r, 1000), 5000)
			s.writeAt(randBytes(r, 4000), 1000) // catches up to the hashed prefix's end, then beyond
			s.writeAt(randBytes(r, 10), 6000)
		}},
		{"hole never written", func(s *stagedModel, r *rand.Rand) {
			s.writeAt(randBytes(r, 10), 0)
			s.writeAt(randBytes(r, 10), 1<<16)
		}},
		{"overwrite inside the hashed prefix", func(s *stagedModel, r *rand.Rand) {
			s.writeAt(randBytes(r, 50_000), 0)
			s.writeAt(randBytes(r, 100), 20_000)
			s.writeAt(randBytes(r, 50_000), 50_000)
		}},
		{"overlapping across the prefix end", func(s *stagedModel, r *rand.Rand) {
			s.writeAt(randBytes(r, 1000), 0)
			s.writeAt(randBytes(r, 1000), 500)
			s.writeAt(randBytes(r, 10), 1500)
		}},
		{"truncate shrink below prefix, then append", func(s *stagedModel, r *rand.Rand) {
			s.writeAt(randBytes(r, 10_000), 0)
			s.truncate(3000)
			s.writeAt(randBytes(r, 2000), 3000)
		}},
		{"truncate grow, then write in the zeros", func(s *stagedModel, r *rand.Rand) {
			s.writeAt(randBytes(r, 1000), 0)
			s.truncate(5000)
			s.writeAt(randBytes(r, 100), 1000)
			s.writeAt(randBytes(r, 100), 4000)
		}},
		{"truncate to zero", func(s *stagedModel, r *rand.Rand) {
			s.writeAt(randBytes(r, 1000), 0)
			s.truncate(0)
		}},
		{"truncate between prefix and end", func(s *stagedModel, r *rand.Rand) {
			s.writeAt(randBytes(r, 1000), 0)
			s.writeAt(randBytes(r, 1000), 3000)
			s.truncate(3500)
			s.writeAt(randBytes(r, 2000), 1000)
		}},
		{"random mix", func(s *stagedModel, r *rand.Rand) {
			for i := 0; i < 300; i++ {
				switch k := r.IntN(10); {
				case k < 4: // append
					s.writeAt(randBytes(r, 1+r.IntN(5000)), int64(len(s.want)))
				case k < 8: // anywhere, maybe past the end
					s.writeAt(randBytes(r, 1+r.IntN(5000)), int64(r.IntN(len(s.want)+2000)))
				default:
					s.truncate(int64(r.IntN(len(s.want) + 3000)))
				}
			}
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			r := rand.New(rand.NewPCG(uint64(i), 42))
			item := e.item(lib, fmt.Sprintf("item%d", i))
			s := e.updateSession(item)
			_, err := e.m.AddFile(e.ctx, s, FileAddSpec{Name: "f", SourceType: SourcePush})
			e.must(err)
			sf, err := e.m.OpenUpload(e.ctx, s, "f", UploadOptions{})
			e.must(err)
			model := &stagedModel{t: t, sf: sf}
			c.ops(model, r)
			if got := sf.Size(); got != int64(len(model.want)) {
				t.Fatalf("Size() = %d, want %d", got, len(model.want))
			}
			// The writer reads back its own bytes.
			back := make([]byte, len(model.want))
			if n, err := sf.ReadAt(back, 0); n != len(back) || (err != nil && n != len(back)) || !bytes.Equal(back, model.want) {
				t.Fatalf("ReadAt: %d bytes, %v, equal=%v", n, err, bytes.Equal(back, model.want))
			}
			info, err := sf.Finish(e.ctx)
			e.must(err)
			e.must(sf.Close())
			if info.Status != TransferReady || info.Size == nil || *info.Size != int64(len(model.want)) {
				t.Fatalf("after Finish: %+v", info)
			}
			e.must(e.m.CompleteUpdateSession(e.ctx, s))
			f, err := e.m.GetFile(e.ctx, item, "f")
			e.must(err)
			sum := sha256.Sum256(model.want)
			if f.ChecksumInfo.Checksum != hex.EncodeToString(sum[:]) || f.Size != int64(len(model.want)) {
				t.Fatalf("committed sha256 %s size %d, want %x size %d", f.ChecksumInfo.Checksum, f.Size, sum, len(model.want))
			}
			// And the committed bytes are the expected ones.
			d := e.downloadSession(item)
			rd, err := e.m.OpenDownload(e.ctx, d, "f")
			e.must(err)
			got, err := e.readAll(rd)
			e.must(err)
			rd.Close()
			if got != string(model.want) {
				t.Fatalf("committed content differs (%d bytes, want %d)", len(got), len(model.want))
			}
			e.must(e.m.DeleteDownloadSession(e.ctx, d))
		})
	}
	e.t = t
	rep, err := e.m.Fsck(e.ctx, nil)
	e.must(err)
	if len(rep.Problems) != 0 {
		t.Fatalf("fsck: %+v", rep.Problems)
	}
}

// TestStagedFileConcurrentWriters: several handles on one staged file
// write disjoint blocks concurrently, in random order.
func TestStagedFileConcurrentWriters(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "iso")
	s := e.updateSession(item)
	_, err := e.m.AddFile(e.ctx, s, FileAddSpec{Name: "f", SourceType: SourcePush})
	e.must(err)
	const writers, blocks, block = 4, 64, 8192
	r := rand.New(rand.NewPCG(1, 2))
	want := randBytes(r, blocks*block)
	order := r.Perm(blocks)
	var wg sync.WaitGroup
	handles := make([]*StagedFile, writers)
	for w := range handles {
		handles[w], err = e.m.OpenUpload(e.ctx, s, "f", UploadOptions{})
		e.must(err)
	}
	if handles[0] != handles[writers-1] {
		t.Fatal("two opens of one file got different staged files")
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < blocks; i += writers {
				b := order[i]
				if _, err := handles[w].WriteAt(want[b*block:(b+1)*block], int64(b*block)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, h := range handles[1:] {
		e.must(h.Close())
	}
	info, err := handles[0].Finish(e.ctx)
	e.must(err)
	handles[0].Close()
	if info.Status != TransferReady {
		t.Fatalf("%+v", info)
	}
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	f, err := e.m.GetFile(e.ctx, item, "f")
	e.must(err)
	sum := sha256.Sum256(want)
	if f.ChecksumInfo.Checksum != hex.EncodeToString(sum[:]) {
		t.Fatalf("sha256 %s, want %x", f.ChecksumInfo.Checksum, sum)
	}
}

// TestStagedFileRequestedChecksums: the digest the client asked for is
// verified in its algorithm, on the in-order path and on the path that
// re-reads the file at Finish.
func TestStagedFileRequestedChecksums(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "iso")
	content := randBytes(rand.New(rand.NewPCG(3, 4)), 3<<20+17)
	algs := map[string]func() hash.Hash{
		AlgMD5: md5.New, AlgSHA1: sha1.New, AlgSHA256: sha256.New, AlgSHA512: sha512.New, "": sha1.New,
	}
	s := e.updateSession(item)
	n := 0
	for alg, newHash := range algs {
		h := newHash()
		h.Write(content)
		digest := hex.EncodeToString(h.Sum(nil))
		for _, order := range []string{"in order", "out of order"} {
			for _, good := range []bool{true, false} {
				n++
				name := fmt.Sprintf("f%d", n)
				sum := digest
				if !good { // flip the last hex digit
					last := "0"
					if digest[len(digest)-1] == '0' {
						last = "1"
					}
					sum = digest[:len(digest)-1] + last
				}
				t.Run(fmt.Sprintf("%s/%s/good=%v", alg, order, good), func(t *testing.T) {
					e.t = t
					_, err := e.m.AddFile(e.ctx, s, FileAddSpec{
						Name: name, SourceType: SourcePush,
						ChecksumInfo: &ChecksumInfo{Algorithm: alg, Checksum: strings.ToUpper(sum)},
					})
					e.must(err)
					sf, err := e.m.OpenUpload(e.ctx, s, name, UploadOptions{})
					e.must(err)
					defer sf.Close()
					half := len(content) / 2
					if order == "in order" {
						_, err = sf.Write(content[:half])
						e.must(err)
						_, err = sf.Write(content[half:])
					} else {
						_, err = sf.WriteAt(content[half:], int64(half))
						e.must(err)
						_, err = sf.WriteAt(content[:half], 0)
					}
					e.must(err)
					info, err := sf.Finish(e.ctx)
					if good {
						e.must(err)
						if info.Status != TransferReady {
							t.Fatalf("%+v", info)
						}
						return
					}
					if !errors.Is(err, ErrChecksumMismatch) || KindOf(err) != KindInvalidArgument {
						t.Fatalf("Finish = %v, want a checksum mismatch", err)
					}
					if info.Status != TransferError || info.ErrorMessage == nil {
						t.Fatalf("%+v", info)
					}
					// Drop it so that the session can complete.
					e.must(e.m.RemoveSessionFile(e.ctx, s, name))
				})
			}
		}
	}
	e.t = t
	e.must(e.m.CompleteUpdateSession(e.ctx, s))
	files, err := e.m.ListFiles(e.ctx, item)
	e.must(err)
	if len(files) != len(algs)*2 {
		t.Fatalf("committed %d files, want %d", len(files), len(algs)*2)
	}
	for _, f := range files {
		if f.RequestedChecksum == nil || f.RequestedChecksum.Checksum != strings.ToLower(f.RequestedChecksum.Checksum) {
			t.Errorf("%s: requested checksum %+v, want lowercase hex", f.Name, f.RequestedChecksum)
		}
	}
}

// TestUploadFromCommitted: a staged file can start from the committed
// bytes (append, in-place edits); the result is a new version.
func TestUploadFromCommitted(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "iso")
	e.commit(item, "log.txt", "line 1\n")

	s := e.updateSession(item)
	_, err := e.m.AddFile(e.ctx, s, FileAddSpec{Name: "log.txt", SourceType: SourcePush})
	e.must(err)
	sf, err := e.m.OpenUpload(e.ctx, s, "log.txt", UploadOptions{FromCommitted: true})
	e.must(err)
	if sf.Size() != 7 {
		t.Fatalf("staged size %d, want the committed 7", sf.Size())
	}
	// Copying the committed bytes is not a transfer.
	if f, err := e.m.GetSessionFile(e.ctx, s, "log.txt"); err != nil || f.BytesTransferred != 0 {
		t.Fatalf("bytes_transferred after open = %+v, %v", f, err)
	}
	_, err = sf.Write([]byte("line 2\n"))
	e.must(err)
	_, err = sf.WriteAt([]byte("L"), 0)
	e.must(err)
	info, err := sf.Finish(e.ctx)
	e.must(err)
	sf.Close()
	if info.BytesTransferred != 8 {
		t.Errorf("bytes_transferred %d, want 8", info.BytesTransferred)
	}
	e.must(e.m.CompleteUpdateSession(e.ctx, s))

	want := "Line 1\nline 2\n"
	f, err := e.m.GetFile(e.ctx, item, "log.txt")
	e.must(err)
	sum := sha256.Sum256([]byte(want))
	if f.Version != "2" || f.Size != int64(len(want)) || f.ChecksumInfo.Checksum != hex.EncodeToString(sum[:]) {
		t.Fatalf("committed %+v", f)
	}

	// A name the item does not have starts empty.
	s2 := e.updateSession(item)
	_, err = e.m.AddFile(e.ctx, s2, FileAddSpec{Name: "new.txt", SourceType: SourcePush})
	e.must(err)
	sf2, err := e.m.OpenUpload(e.ctx, s2, "new.txt", UploadOptions{FromCommitted: true})
	e.must(err)
	if sf2.Size() != 0 {
		t.Fatalf("new file starts with %d bytes", sf2.Size())
	}
	sf2.Close()
	e.must(e.m.CancelUpdateSession(e.ctx, s2))
}

// TestTransferProgressVisible: bytes_transferred and client_progress show
// through get while the upload runs, before Finish stores them.
func TestTransferProgressVisible(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	item := e.item(e.library("lib"), "iso")
	e.commit(item, "old.txt", "old")
	s := e.updateSession(item)
	for _, name := range []string{"a", "b"} {
		_, err := e.m.AddFile(e.ctx, s, FileAddSpec{Name: name, SourceType: SourcePush})
		e.must(err)
	}
	a, err := e.m.OpenUpload(e.ctx, s, "a", UploadOptions{})
	e.must(err)
	b, err := e.m.OpenUpload(e.ctx, s, "b", UploadOptions{})
	e.must(err)

	check := func(wantA, wantB int64, status TransferStatus, progress int64) {
		t.Helper()
		sess, err := e.m.GetUpdateSession(e.ctx, s)
		e.must(err)
		if sess.BytesTransferred != wantA+wantB || sess.ClientProgress != progress {
			t.Fatalf("session: transferred %d progress %d, want %d and %d", sess.BytesTransferred, sess.ClientProgress, wantA+wantB, progress)
		}
		fa, err := e.m.GetSessionFile(e.ctx, s, "a")
		e.must(err)
		if fa.BytesTransferred != wantA || fa.Status != status {
			t.Fatalf("file a: %+v, want %d bytes %s", fa, wantA, status)
		}
		files, err := e.m.ListSessionFiles(e.ctx, s)
		e.must(err)
		for _, f := range files {
			if f.Name == "b" && f.BytesTransferred != wantB {
				t.Fatalf("list: file b transferred %d, want %d", f.BytesTransferred, wantB)
			}
			if f.Name == "old.txt" && (f.SourceType != SourceNone || f.Status != TransferReady || f.BytesTransferred != 0) {
				t.Fatalf("untouched file: %+v", f)
			}
		}
	}
	check(0, 0, TransferTransferring, 0)
	_, err = a.Write(make([]byte, 1000))
	e.must(err)
	p := int64(30)
	e.must(e.m.KeepAliveUpdateSession(e.ctx, s, &p))
	check(1000, 0, TransferTransferring, 30)
	_, err = b.WriteAt(make([]byte, 500), 4000)
	e.must(err)
	_, err = a.WriteAt(make([]byte, 10), 0) // overwrites count as transferred bytes too
	e.must(err)
	check(1010, 500, TransferTransferring, 30)
	_, err = a.Finish(e.ctx)
	e.must(err)
	a.Close()
	check(1010, 500, TransferReady, 30)
	b.Close()
	// Closed without Finish: the bytes received so far still show.
	check(1010, 500, TransferReady, 30)
}
