package fs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"clfs/sessionmgr"
)

// directDriver uses clfs as a front end without FUSE would: through the
// Manager interface only, as root.
type directDriver struct {
	ctx context.Context
	m   Manager
}

func newDirectDriver(t *testing.T, m Manager) driver {
	return &directDriver{ctx: t.Context(), m: m}
}

// openManager opens a session manager on home, closed at the end of the
// test.
func openManager(t *testing.T, home string, readOnly bool) *sessionmgr.Manager {
	t.Helper()
	m, err := sessionmgr.Open(sessionmgr.Options{Home: home, ReadOnly: readOnly, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// rootCaller is who the direct driver acts as: the suite runs as root.
var rootCaller = sessionmgr.Caller{Privileged: true}

// errno is err as a process would see it.
func errno(err error) error {
	if e := errnoOf(err); e != 0 {
		return e
	}
	return nil
}

// split splits a path into its library, item and file names.
func split(path string) []string {
	if path == "" {
		return nil
	}
	return strings.Split(path, "/")
}

func (d *directDriver) library(name string) (*sessionmgr.Library, error) {
	return d.m.LibraryByName(d.ctx, name)
}

func (d *directDriver) item(lib, name string) (*sessionmgr.Item, error) {
	l, err := d.library(lib)
	if err != nil {
		return nil, err
	}
	return d.m.ItemByName(d.ctx, l.ID, name)
}

// file resolves LIB/ITEM/FILE to the item's id and the file's name.
func (d *directDriver) file(path string) (itemID, name string, err error) {
	p := split(path)
	if len(p) != 3 {
		return "", "", syscall.EISDIR
	}
	it, err := d.item(p[0], p[1])
	if err != nil {
		return "", "", err
	}
	return it.ID, p[2], nil
}

func (d *directDriver) Mkdir(path string, mode uint32) error {
	p := split(path)
	switch len(p) {
	case 1:
		id, err := d.m.CreateLibrary(d.ctx, sessionmgr.LibraryCreateSpec{Name: p[0]}, "")
		if err == nil {
			err = d.m.SetLibraryPosix(d.ctx, id, sessionmgr.PosixChange{Mode: &mode})
		}
		return errno(err)
	case 2:
		lib, err := d.library(p[0])
		if err != nil {
			return errno(err)
		}
		id, err := d.m.CreateItem(d.ctx, sessionmgr.ItemCreateSpec{LibraryID: lib.ID, Name: p[1]}, "")
		if err == nil {
			err = d.m.SetItemPosix(d.ctx, id, sessionmgr.PosixChange{Mode: &mode})
		}
		return errno(err)
	}
	return syscall.EPERM
}

func (d *directDriver) Rmdir(path string) error {
	p := split(path)
	switch len(p) {
	case 1:
		lib, err := d.library(p[0])
		if err == nil {
			err = d.m.DeleteLibraryIfEmpty(d.ctx, lib.ID)
		}
		return errno(err)
	case 2:
		it, err := d.item(p[0], p[1])
		if err == nil {
			err = d.m.DeleteItemIfEmpty(d.ctx, it.ID)
		}
		return errno(err)
	}
	return syscall.ENOTDIR
}

// directWriter is an open write descriptor: its Close is FLUSH (commit
// what it wrote) then RELEASE.
type directWriter struct {
	ctx   context.Context
	d     *sessionmgr.Draft
	off   int64
	wrote bool
}

func (w *directWriter) Write(p []byte) (int, error) {
	n, err := w.d.WriteAs(w.ctx, rootCaller, p, w.off)
	w.off += int64(n)
	w.wrote = true
	return n, errno(err)
}

func (w *directWriter) Close() error {
	var err error
	if w.wrote {
		err = w.d.Commit(w.ctx)
	}
	return errno(errors.Join(err, w.d.Close(w.ctx)))
}

func (d *directDriver) Create(path string, mode uint32) (fileWriter, error) {
	itemID, name, err := d.file(path)
	if err != nil {
		return nil, errno(err)
	}
	if _, err := d.m.ItemEntry(d.ctx, itemID, name); err == nil {
		dr, err := d.m.OpenDraft(d.ctx, itemID, name)
		if err != nil {
			return nil, errno(err)
		}
		if err := dr.TruncateAtOpen(d.ctx, rootCaller); err != nil {
			dr.Close(d.ctx)
			return nil, errno(err)
		}
		return &directWriter{ctx: d.ctx, d: dr}, nil
	}
	dr, err := d.m.CreateFile(d.ctx, itemID, name, sessionmgr.Posix{Mode: mode})
	if err != nil {
		return nil, errno(err)
	}
	return &directWriter{ctx: d.ctx, d: dr}, nil
}

func (d *directDriver) ReadFile(path string) ([]byte, error) {
	itemID, name, err := d.file(path)
	if err != nil {
		return nil, errno(err)
	}
	e, err := d.m.ItemEntry(d.ctx, itemID, name)
	if err != nil {
		return nil, errno(err)
	}
	if e.Pending {
		return nil, nil // a new name reads as empty until its first commit
	}
	r, err := d.m.OpenFileReader(d.ctx, itemID, name)
	if err != nil {
		return nil, errno(err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	return b, errno(err)
}

func (d *directDriver) ReadDir(path string) ([]string, error) {
	var names []string
	p := split(path)
	switch len(p) {
	case 0:
		libs, err := d.m.ListLibraries(d.ctx)
		if err != nil {
			return nil, errno(err)
		}
		for _, l := range libs {
			names = append(names, l.Name)
		}
	case 1:
		lib, err := d.library(p[0])
		if err != nil {
			return nil, errno(err)
		}
		items, err := d.m.ListItems(d.ctx, lib.ID)
		if err != nil {
			return nil, errno(err)
		}
		for _, it := range items {
			names = append(names, it.Name)
		}
	case 2:
		it, err := d.item(p[0], p[1])
		if err != nil {
			return nil, errno(err)
		}
		entries, err := d.m.ItemEntries(d.ctx, it.ID)
		if err != nil {
			return nil, errno(err)
		}
		for _, e := range entries {
			names = append(names, e.Name)
		}
	default:
		return nil, syscall.ENOTDIR
	}
	return names, nil
}

func (d *directDriver) Stat(path string) (*info, error) {
	p := split(path)
	switch len(p) {
	case 1:
		lib, err := d.library(p[0])
		if err != nil {
			return nil, errno(err)
		}
		return &info{Dir: true, Mode: lib.Posix.Mode, Mtime: lib.Posix.Mtime}, nil
	case 2:
		it, err := d.item(p[0], p[1])
		if err != nil {
			return nil, errno(err)
		}
		return &info{Dir: true, Mode: it.Posix.Mode, Mtime: it.Posix.Mtime}, nil
	}
	itemID, name, err := d.file(path)
	if err != nil {
		return nil, errno(err)
	}
	e, err := d.m.ItemEntry(d.ctx, itemID, name)
	if err != nil {
		return nil, errno(err)
	}
	return &info{Mode: e.Posix.Mode, Size: e.Size, Mtime: e.Posix.Mtime}, nil
}

func (d *directDriver) Rename(from, to string, noReplace bool) error {
	f, t := split(from), split(to)
	if len(f) != len(t) || len(f) == 0 || strings.Join(f[:len(f)-1], "/") != strings.Join(t[:len(t)-1], "/") {
		return syscall.EXDEV
	}
	switch len(f) {
	case 1:
		return errno(d.m.RenameLibrary(d.ctx, f[0], t[0], noReplace))
	case 2:
		lib, err := d.library(f[0])
		if err != nil {
			return errno(err)
		}
		return errno(d.m.RenameItem(d.ctx, lib.ID, f[1], t[1], noReplace))
	}
	itemID, name, err := d.file(from)
	if err != nil {
		return errno(err)
	}
	return errno(d.m.RenameFile(d.ctx, itemID, name, t[2], noReplace))
}

func (d *directDriver) Remove(path string) error {
	itemID, name, err := d.file(path)
	if err != nil {
		return errno(err)
	}
	return errno(d.m.RemoveFile(d.ctx, itemID, name))
}

// setattr applies a change as setattr(2) by path does.
func (d *directDriver) setattr(path string, ch sessionmgr.SetattrChange) error {
	p := split(path)
	switch len(p) {
	case 1:
		lib, err := d.library(p[0])
		if err == nil {
			err = d.m.SetLibraryPosix(d.ctx, lib.ID, ch.Posix)
		}
		return errno(err)
	case 2:
		it, err := d.item(p[0], p[1])
		if err == nil {
			err = d.m.SetItemPosix(d.ctx, it.ID, ch.Posix)
		}
		return errno(err)
	}
	itemID, name, err := d.file(path)
	if err != nil {
		return errno(err)
	}
	dr, err := d.m.OpenDraft(d.ctx, itemID, name)
	if err != nil {
		return errno(err)
	}
	ch.By = rootCaller
	_, _, err = dr.Setattr(d.ctx, ch)
	return errno(errors.Join(err, dr.Close(d.ctx)))
}

func (d *directDriver) Chmod(path string, mode uint32) error {
	return d.setattr(path, sessionmgr.SetattrChange{Posix: sessionmgr.PosixChange{Mode: &mode}})
}

func (d *directDriver) Chtimes(path string, mtime time.Time) error {
	return d.setattr(path, sessionmgr.SetattrChange{Posix: sessionmgr.PosixChange{Mtime: &mtime}})
}

func (d *directDriver) Truncate(path string, size int64) error {
	return d.setattr(path, sessionmgr.SetattrChange{Size: &size})
}
