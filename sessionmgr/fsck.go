package sessionmgr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"clfs/meta"
)

// FsckProblem is one thing fsck found wrong.
type FsckProblem struct {
	// File names the affected file as LIBRARY/ITEM/FILE, when there is one.
	File string `json:"file,omitempty"`
	Path string `json:"path,omitempty"`
	Msg  string `json:"message"`
}

// FsckReport is what Fsck found.
type FsckReport struct {
	FilesChecked int           `json:"files_checked"`
	BlobsChecked int           `json:"blobs_checked"`
	BytesChecked int64         `json:"bytes_checked"`
	Problems     []FsckProblem `json:"problems"`
}

// Fsck re-hashes every committed blob and checks reference counts against
// the files and download sessions that use them. progress, if not nil, is
// called with the bytes hashed so far.
func (m *Manager) Fsck(ctx context.Context, progress func(done, total int64)) (*FsckReport, error) {
	type use struct {
		files []string
		size  int64
		refs  int64
		path  string
		sha   []byte
		key   meta.ContentKey
		// inline blobs are in the catalog; a file at path is then an
		// optional copy written for a URI, checked if present.
		inline bool
	}
	uses := map[string]*use{}
	var order []string
	rep := &FsckReport{Problems: []FsckProblem{}}
	var refs []meta.ContentRefEntry
	err := m.store.View(ctx, func(tx *meta.Tx) error {
		// The body may run again (meta.Store.View): it starts afresh.
		clear(uses)
		order, refs = nil, nil
		*rep = FsckReport{Problems: []FsckProblem{}}
		add := func(k meta.ContentKey, size int64, label string) error {
			u := uses[k.String()]
			if u == nil {
				root, err := m.backingRoot(tx, k.BackingID)
				if err != nil {
					return err
				}
				u = &use{size: size, path: contentPath(root, k.SHA256), sha: k.SHA256, key: k}
				uses[k.String()] = u
				order = append(order, k.String())
			}
			u.refs++
			if label != "" {
				u.files = append(u.files, label)
			}
			return nil
		}
		files, err := tx.AllFiles()
		if err != nil {
			return err
		}
		for i := range files {
			f := &files[i]
			label := f.Name
			if it, err := tx.Item(f.ItemID); err == nil {
				label = itemLabel(tx, it) + "/" + f.Name
			}
			rep.FilesChecked++
			if err := add(meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256}, f.Size, label); err != nil {
				return err
			}
		}
		sums := map[uint64]int64{} // by table: one being built or swept has files too
		for i := range files {
			sums[files[i].Table] += files[i].Size
		}
		items, err := tx.Items()
		if err != nil {
			return err
		}
		for i := range items {
			it := &items[i]
			// A hidden item's files are being removed (sweep.go):
			// its size is the one it had.
			if it.SizeKnown && !it.Deleting && it.Size != sums[it.Table()] {
				rep.Problems = append(rep.Problems, FsckProblem{File: itemLabel(tx, it), Msg: fmt.Sprintf("item records a size of %d bytes, its files add up to %d", it.Size, sums[it.Table()])})
			}
		}
		downs, err := tx.DownloadSessions()
		if err != nil {
			return err
		}
		// Pins hold references while their session is pinned, and
		// until the sweep dropped them (sweepPins), which may outlive
		// the session's record.
		var pinning []uint64
		for i := range downs {
			if downs[i].Pinned || downs[i].Unpinning {
				pinning = append(pinning, downs[i].ID)
			}
		}
		hidden, err := tx.HiddenRecords(math.MaxInt)
		if err != nil {
			return err
		}
		for _, h := range hidden {
			if h.Kind == meta.DownloadSessionObject && !slices.Contains(pinning, h.ID) {
				pinning = append(pinning, h.ID)
			}
		}
		for _, id := range pinning {
			dfs, err := tx.DownloadSessionFiles(id)
			if err != nil {
				return err
			}
			for _, f := range dfs {
				if f.Unpinned {
					continue
				}
				if err := add(meta.ContentKey{BackingID: f.BackingID, SHA256: f.SHA256}, f.Size, ""); err != nil {
					return err
				}
			}
		}
		refs, err = tx.ContentRefs()
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		u := uses[r.Key.String()]
		if u != nil {
			u.inline = r.Ref.Inline
		}
		switch {
		case u == nil:
			rep.Problems = append(rep.Problems, FsckProblem{Msg: fmt.Sprintf("content %s has %d references but nothing uses it", r.Key, r.Ref.Refs)})
		case u.refs != r.Ref.Refs:
			rep.Problems = append(rep.Problems, FsckProblem{File: first(u.files), Path: u.path, Msg: fmt.Sprintf("content has %d references recorded, %d in use", r.Ref.Refs, u.refs)})
		}
	}
	var total, done int64
	for _, k := range order {
		total += uses[k].size
	}
	for _, k := range order {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		u := uses[k]
		rep.BlobsChecked++
		var sum []byte
		var n int64
		var err error
		path := u.path
		if u.inline {
			sum, n, err = m.hashInline(ctx, u.key)
			path = "" // in the catalog
		} else {
			sum, n, err = hashFile(u.path)
		}
		done += u.size
		rep.BytesChecked += n
		if progress != nil {
			progress(done, total)
		}
		problem := func(msg string) {
			if len(u.files) == 0 {
				rep.Problems = append(rep.Problems, FsckProblem{Path: path, Msg: msg + " (pinned by a download session)"})
			}
			for _, f := range u.files {
				rep.Problems = append(rep.Problems, FsckProblem{File: f, Path: path, Msg: msg})
			}
		}
		if msg := blobProblem(u.sha, u.size, sum, n, err); msg != "" {
			problem(msg)
		}
		if u.inline {
			// A copy written out for a URI must match too: clients
			// read it directly.
			if _, serr := os.Stat(u.path); serr == nil {
				sum, n, err := hashFile(u.path)
				path = u.path
				if msg := blobProblem(u.sha, u.size, sum, n, err); msg != "" {
					problem(msg)
				}
			}
		}
	}
	return rep, nil
}

// blobProblem says what is wrong with stored content, or "".
func blobProblem(wantSHA []byte, wantSize int64, sum []byte, n int64, err error) string {
	switch {
	case err != nil:
		return fmt.Sprintf("stored content unreadable: %v", err)
	case n != wantSize:
		return fmt.Sprintf("stored content is %d bytes, want %d", n, wantSize)
	case !bytes.Equal(sum, wantSHA):
		return fmt.Sprintf("stored content has sha256 %x, want %x", sum, wantSHA)
	}
	return ""
}

func (m *Manager) hashInline(ctx context.Context, k meta.ContentKey) ([]byte, int64, error) {
	var b []byte
	err := m.store.View(ctx, func(tx *meta.Tx) (err error) {
		b, err = tx.InlineContent(k)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("inline content in the catalog: %w", err)
	}
	sum := sha256.Sum256(b)
	return sum[:], int64(len(b)), nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func hashFile(path string) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return h.Sum(nil), n, err
}
