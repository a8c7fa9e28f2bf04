package sessionmgr

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"

	"clfs/meta"
)

// Unlinked files that are still open (POSIX: the name goes at once, the
// file at its last close). Temp-file patterns rely on it: create, unlink,
// keep using the descriptor (sort, compilers, databases).

// detachIfOpen keeps the draft's file usable through its open handles
// before its name is removed: staged bytes are copied out of the item's
// session (which drops them with the name), and committed content is
// pinned by a reader. Caller holds d.mu. A failure here is logged, not
// returned: the unlink itself must not fail because of a reader, which
// then reads the file as empty.
func (d *Draft) detachIfOpen(ctx context.Context) {
	d.m.mu.Lock()
	open := d.opens > 0
	d.m.mu.Unlock()
	if !open || d.removed {
		return
	}
	if err := d.detach(ctx); err != nil {
		d.m.log.Warn("keep an unlinked open file", "item", d.item.id, "file", d.name, "err", err)
		if d.orphan == nil {
			d.orphan = &orphanFile{}
		}
	}
	d.attr.Ctime = d.m.now() // its link count changed
}

func (d *Draft) detach(ctx context.Context) error {
	o := &orphanFile{}
	d.orphan = o
	if d.staged != nil {
		f, err := d.m.orphanTemp()
		if err != nil {
			return err
		}
		o.f = f
		n, err := copyAt(f, d.staged)
		o.size = n
		return err
	}
	if !d.committed {
		return nil
	}
	var attr meta.Attr
	err := d.m.store.View(ctx, func(tx *meta.Tx) error {
		f, err := d.m.fileRec(tx, d.item.id, d.name)
		if err == nil {
			attr = f.Attr
		}
		return err
	})
	if err != nil {
		return err
	}
	d.attr = attr
	if d.base == nil {
		if d.base, err = d.m.OpenFileReader(ctx, d.item.id, d.name); err != nil {
			return err
		}
	}
	o.size = d.base.Size()
	return nil
}

// orphanTemp is an unnamed file on the home's storage: removed at once, it
// lives as long as its descriptor, and a crash leaves nothing behind.
func (m *Manager) orphanTemp() (*os.File, error) {
	dir := filepath.Join(m.defaultStorage, "staging")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, storageErr("create staging", err)
	}
	f, err := os.CreateTemp(dir, "unlinked-")
	if err != nil {
		return nil, storageErr("create staging", err)
	}
	os.Remove(f.Name())
	return f, nil
}

// materialize gives an orphan its own file, seeded with the committed
// content it read until now. Caller holds d.mu.
func (d *Draft) materialize() error {
	o := d.orphan
	if o.f != nil {
		return nil
	}
	f, err := d.m.orphanTemp()
	if err != nil {
		return err
	}
	if d.base != nil {
		if _, err := copyAt(f, d.base); err != nil {
			f.Close()
			return err
		}
	}
	o.f = f
	return nil
}

func (d *Draft) orphanWriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := d.materialize(); err != nil {
		return 0, err
	}
	n, err := d.orphan.f.WriteAt(p, off)
	if n > 0 {
		d.orphan.size = max(d.orphan.size, off+int64(n))
		contentChanged(&d.attr, d.m.now())
	}
	if err != nil {
		return n, storageErr("write staging", err)
	}
	return n, nil
}

func (d *Draft) orphanTruncate(ctx context.Context, size int64) error {
	if size < 0 {
		return errorf(KindInvalidArgument, "negative size %d", size)
	}
	if err := d.materialize(); err != nil {
		return err
	}
	if err := d.orphan.f.Truncate(size); err != nil {
		return storageErr("truncate staging", err)
	}
	contentChanged(&d.attr, d.m.now())
	d.orphan.size = size
	return nil
}

// orphanSizeLocked is an unlinked file's size: its own file's once
// written, else the committed version's it still reads. Caller holds d.mu.
func (d *Draft) orphanSizeLocked() int64 {
	switch {
	case d.orphan != nil && d.orphan.f != nil:
		return d.orphan.size
	case d.base != nil:
		return d.base.Size()
	}
	return 0
}

// copyAt copies all of src into dst from offset 0.
func copyAt(dst *os.File, src io.ReaderAt) (int64, error) {
	buf := make([]byte, 1<<20)
	var off int64
	for {
		n, err := src.ReadAt(buf, off)
		if n > 0 {
			if _, werr := dst.WriteAt(buf[:n], off); werr != nil {
				return off, storageErr("write staging", werr)
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// orphanFile is the content of an unlinked file that is still open: the
// committed version it had (Draft.base) until the first change after the
// unlink, then an unnamed file of its own.
type orphanFile struct {
	f    *os.File // nil while the content is base's
	size int64
}
