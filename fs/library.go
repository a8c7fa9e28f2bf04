package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"clfs/sessionmgr"
)

// libraryNode is /LIB: its items are directories in it.
type libraryNode struct {
	fusefs.Inode
	dirXattrs
	fsys *FS
	id   string // API id of the library
}

var (
	_ = (fusefs.NodeLookuper)((*libraryNode)(nil))
	_ = (fusefs.NodeOpendirHandler)((*libraryNode)(nil))
	_ = (fusefs.NodeGetattrer)((*libraryNode)(nil))
	_ = (fusefs.NodeSetattrer)((*libraryNode)(nil))
	_ = (fusefs.NodeMkdirer)((*libraryNode)(nil))
	_ = (fusefs.NodeRmdirer)((*libraryNode)(nil))
	_ = (fusefs.NodeRenamer)((*libraryNode)(nil))
	_ = (fusefs.NodeCreater)((*libraryNode)(nil))
	_ = (fusefs.NodeUnlinker)((*libraryNode)(nil))
	_ = (fusefs.NodeSymlinker)((*libraryNode)(nil))
	_ = (fusefs.NodeMknoder)((*libraryNode)(nil))
	_ = (fusefs.NodeLinker)((*libraryNode)(nil))
	_ = (fusefs.NodeStatfser)((*libraryNode)(nil))
	_ = (fusefs.NodeFsyncer)((*libraryNode)(nil))
)

// Fsync is fsyncdir(2): the namespace changes made so far become durable.
func (l *libraryNode) Fsync(ctx context.Context, f fusefs.FileHandle, flags uint32) syscall.Errno {
	return l.fsys.toErrno("fsyncdir", l.path(""), l.fsys.m.Sync(ctx))
}

func (l *libraryNode) path(name string) string {
	return "/" + l.Path(l.Root()) + "/" + name
}

func (l *libraryNode) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	lib, err := l.fsys.m.LibraryAttributes(ctx, l.id)
	if err != nil {
		return l.fsys.toErrno("getattr", l.path(""), err)
	}
	fillDirAttr(&out.Attr, libraryIno(lib.Posix.Ino), lib.Posix)
	return 0
}

func (l *libraryNode) Setattr(ctx context.Context, f fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if _, ok := in.GetSize(); ok {
		return l.fsys.reject("setattr", l.path(""), syscall.EISDIR, "a library is a directory")
	}
	if ch, ok := posixChange(in); ok {
		if err := l.fsys.m.SetLibraryPosix(ctx, l.id, ch); err != nil {
			return l.fsys.toErrno("setattr", l.path(""), err)
		}
	}
	return l.Getattr(ctx, f, out)
}

func (l *libraryNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return l.fsys.statfs(ctx, out)
}

func (l *libraryNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if errno := l.fsys.checkNameLen(l.path(name), name); errno != 0 {
		return nil, errno
	}
	it, err := l.fsys.m.ItemByName(ctx, l.id, name)
	if err != nil {
		return nil, l.fsys.toErrno("lookup", l.path(name), err)
	}
	return l.itemInode(ctx, it, out), 0
}

func (l *libraryNode) itemInode(ctx context.Context, it *sessionmgr.Item, out *fuse.EntryOut) *fusefs.Inode {
	ino := itemIno(it.Posix.Ino)
	fillDirAttr(&out.Attr, ino, it.Posix)
	return l.NewInode(ctx, &itemNode{fsys: l.fsys, id: it.ID, libraryID: l.id}, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino})
}

func (l *libraryNode) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	h := newListing(&l.Inode, l.Lookup, func(ctx context.Context, h *listing) syscall.Errno {
		items, err := l.fsys.m.ListItems(ctx, l.id)
		if err != nil {
			return l.fsys.toErrno("readdir", l.path(""), err)
		}
		for i := range items {
			it := &items[i]
			h.add(fuse.DirEntry{Name: it.Name, Ino: itemIno(it.Posix.Ino), Mode: syscall.S_IFDIR},
				func(ctx context.Context, out *fuse.EntryOut) *fusefs.Inode { return l.itemInode(ctx, it, out) })
		}
		return 0
	})
	return h, listingFlags, 0
}

func (l *libraryNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	id, err := l.fsys.m.CreateItem(sessionmgr.ByMount(ctx), sessionmgr.ItemCreateSpec{LibraryID: l.id, Name: name}, "")
	if err != nil {
		return nil, l.fsys.toErrno("mkdir", l.path(name), err)
	}
	uid, gid := caller(ctx)
	m := mode & 0o7777
	if err := l.fsys.m.SetItemPosix(ctx, id, sessionmgr.PosixChange{Mode: &m, UID: &uid, GID: &gid}); err != nil {
		return nil, l.fsys.toErrno("mkdir", l.path(name), err)
	}
	it, err := l.fsys.m.GetItem(ctx, id)
	if err != nil {
		return nil, l.fsys.toErrno("mkdir", l.path(name), err)
	}
	return l.itemInode(ctx, it, out), 0
}

func (l *libraryNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	it, err := l.fsys.m.ItemByName(ctx, l.id, name)
	if err == nil {
		err = l.fsys.m.DeleteItemIfEmpty(ctx, it.ID)
	}
	return l.fsys.toErrno("rmdir", l.path(name), err)
}

func (l *libraryNode) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if p, ok := newParent.(*libraryNode); !ok || p.id != l.id {
		return l.fsys.reject("rename", l.path(name), syscall.EXDEV, "an item can only be renamed within its library")
	}
	noReplace, errno := l.fsys.dirRenameFlags(l.path(name), flags)
	if errno != 0 {
		return errno
	}
	return l.fsys.toErrno("rename", l.path(name), l.fsys.m.RenameItem(ctx, l.id, name, newName, noReplace))
}

func (l *libraryNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, l.fsys.reject("create", l.path(name), syscall.EPERM, "files live in items: /LIBRARY/ITEM/FILE")
}

func (l *libraryNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if _, err := l.fsys.m.ItemByName(ctx, l.id, name); err == nil {
		return l.fsys.reject("unlink", l.path(name), syscall.EISDIR, "an item is a directory")
	}
	return syscall.ENOENT
}

func (l *libraryNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, l.fsys.reject("symlink", l.path(name), syscall.EPERM, "symlinks are not supported")
}

func (l *libraryNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, l.fsys.reject("mknod", l.path(name), syscall.EPERM, "device nodes and FIFOs are not supported")
}

func (l *libraryNode) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, l.fsys.reject("link", l.path(name), syscall.EPERM, "hard links are not supported")
}
