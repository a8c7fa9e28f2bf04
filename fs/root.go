package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"clfs/sessionmgr"
)

// rootNode is "/": every library is a directory in it.
type rootNode struct {
	fusefs.Inode
	dirXattrs
	fsys *FS
}

var (
	_ = (fusefs.NodeLookuper)((*rootNode)(nil))
	_ = (fusefs.NodeReaddirer)((*rootNode)(nil))
	_ = (fusefs.NodeGetattrer)((*rootNode)(nil))
	_ = (fusefs.NodeSetattrer)((*rootNode)(nil))
	_ = (fusefs.NodeMkdirer)((*rootNode)(nil))
	_ = (fusefs.NodeRmdirer)((*rootNode)(nil))
	_ = (fusefs.NodeRenamer)((*rootNode)(nil))
	_ = (fusefs.NodeCreater)((*rootNode)(nil))
	_ = (fusefs.NodeUnlinker)((*rootNode)(nil))
	_ = (fusefs.NodeSymlinker)((*rootNode)(nil))
	_ = (fusefs.NodeMknoder)((*rootNode)(nil))
	_ = (fusefs.NodeLinker)((*rootNode)(nil))
	_ = (fusefs.NodeStatfser)((*rootNode)(nil))
	_ = (fusefs.NodeFsyncer)((*rootNode)(nil))
)

func (r *rootNode) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	t := r.fsys.started
	fillDirAttr(&out.Attr, rootIno, sessionmgr.Posix{Mode: 0o755, Mtime: t, Ctime: t})
	return 0
}

func (r *rootNode) Setattr(ctx context.Context, f fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	// The root is not stored: accept and ignore, as chmod/utimes on a
	// mountpoint must not break cp -a or rsync -a of the whole mount.
	return r.Getattr(ctx, f, out)
}

// Fsync is fsyncdir(2) of the root (and syncfs(2), which the kernel
// does not send to FUSE): the catalog's changes become durable.
func (r *rootNode) Fsync(ctx context.Context, f fusefs.FileHandle, flags uint32) syscall.Errno {
	return r.fsys.toErrno("fsyncdir", "/", r.fsys.m.Sync(ctx))
}

func (r *rootNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return r.fsys.statfs(ctx, out)
}

func (r *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if errno := r.fsys.checkNameLen("/"+name, name); errno != 0 {
		return nil, errno
	}
	lib, err := r.fsys.m.LibraryByName(ctx, name)
	if err != nil {
		return nil, r.fsys.toErrno("lookup", "/"+name, err)
	}
	return r.libraryInode(ctx, lib, out), 0
}

func (r *rootNode) libraryInode(ctx context.Context, lib *sessionmgr.Library, out *fuse.EntryOut) *fusefs.Inode {
	ino := libraryIno(lib.Posix.Ino)
	fillDirAttr(&out.Attr, ino, lib.Posix)
	return r.NewInode(ctx, &libraryNode{fsys: r.fsys, id: lib.ID}, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino})
}

func (r *rootNode) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	libs, err := r.fsys.m.ListLibraries(ctx)
	if err != nil {
		return nil, r.fsys.toErrno("readdir", "/", err)
	}
	entries := append(make([]fuse.DirEntry, 0, len(libs)+2), dots(&r.Inode)...)
	for _, l := range libs {
		entries = append(entries, fuse.DirEntry{Name: l.Name, Ino: libraryIno(l.Posix.Ino), Mode: syscall.S_IFDIR})
	}
	return fusefs.NewListDirStream(entries), 0
}

func (r *rootNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	path := "/" + name
	id, err := r.fsys.m.CreateLibrary(sessionmgr.ByMount(ctx), sessionmgr.LibraryCreateSpec{Name: name}, "")
	if err != nil {
		return nil, r.fsys.toErrno("mkdir", path, err)
	}
	uid, gid := caller(ctx)
	m := mode & 0o7777
	if err := r.fsys.m.SetLibraryPosix(ctx, id, sessionmgr.PosixChange{Mode: &m, UID: &uid, GID: &gid}); err != nil {
		return nil, r.fsys.toErrno("mkdir", path, err)
	}
	lib, err := r.fsys.m.GetLibrary(ctx, id)
	if err != nil {
		return nil, r.fsys.toErrno("mkdir", path, err)
	}
	return r.libraryInode(ctx, lib, out), 0
}

func (r *rootNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	path := "/" + name
	lib, err := r.fsys.m.LibraryByName(ctx, name)
	if err == nil {
		err = r.fsys.m.DeleteLibraryIfEmpty(ctx, lib.ID)
	}
	return r.fsys.toErrno("rmdir", path, err)
}

func (r *rootNode) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	path := "/" + name
	if _, ok := newParent.(*rootNode); !ok {
		return r.fsys.reject("rename", path, syscall.EXDEV, "a library can only be renamed, not moved")
	}
	noReplace, errno := r.fsys.dirRenameFlags(path, flags)
	if errno != 0 {
		return errno
	}
	return r.fsys.toErrno("rename", path, r.fsys.m.RenameLibrary(ctx, name, newName, noReplace))
}

// Files, links and device nodes cannot live at "/".

func (r *rootNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, r.fsys.reject("create", "/"+name, syscall.EPERM, "files live in items: /LIBRARY/ITEM/FILE")
}

func (r *rootNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if _, err := r.fsys.m.LibraryByName(ctx, name); err == nil {
		return r.fsys.reject("unlink", "/"+name, syscall.EISDIR, "a library is a directory")
	}
	return syscall.ENOENT
}

func (r *rootNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, r.fsys.reject("symlink", "/"+name, syscall.EPERM, "symlinks are not supported")
}

func (r *rootNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, r.fsys.reject("mknod", "/"+name, syscall.EPERM, "device nodes and FIFOs are not supported")
}

func (r *rootNode) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, r.fsys.reject("link", "/"+name, syscall.EPERM, "hard links are not supported")
}

// dirRenameFlags reads the flags of a rename of a library or an item:
// RENAME_EXCHANGE and RENAME_WHITEOUT are not supported.
func (fsys *FS) dirRenameFlags(path string, flags uint32) (noReplace bool, errno syscall.Errno) {
	if flags&^uint32(renameNoReplace) != 0 {
		return false, fsys.reject("rename", path, syscall.EINVAL, "RENAME_EXCHANGE and RENAME_WHITEOUT are not supported")
	}
	return flags&renameNoReplace != 0, 0
}

// Rename flags of renameat2(2).
const (
	renameNoReplace = 1
	renameExchange  = 2
	renameWhiteout  = 4
)
