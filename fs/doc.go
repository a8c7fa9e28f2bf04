// Package fs is the FUSE face of clfs: libraries are top-level
// directories, items are sub-directories, files live in items.
//
// Every node method decodes its arguments, makes one call into
// sessionmgr, fills the reply and returns toErrno(err). What a write, a
// close or a rename means for update and download sessions is decided in
// sessionmgr (see its Draft); nothing here touches the catalog or the
// storage directory. The session manager is reached through Manager
// (manager.go), the calls fs makes; behaviour_test.go runs one suite of
// what a user observes directly against it and through a real mount.
//
// # Inode numbers
//
// Inode numbers come from the catalog's IDs with a kind tag in the top
// byte, so they are stable across remounts and never collide between
// libraries, items and files.
//
// # Error handling
//
// errno.go maps sessionmgr's error kinds and causes to errno; each
// rejected operation is logged once with its op, path, errno and reason.
//
// # Kernel caching
//
// Entries and attributes are cached for a second. Changes made by other
// clients of the same session manager are pushed to the kernel through
// Invalidate, from a goroutine, never from inside a request handler.
//
// # File nodes outlive their names
//
// The kernel names a file by its inode, which may outlive its name: a
// rename over it or an unlink leaves descriptors open on it, and an
// open(2) that looked the name up just before a rename arrives for the
// replaced inode. A file node therefore keeps the catalog ID it was looked
// up with and the name it was last seen under. Its attributes are the
// name's only while the name still holds that ID (else ESTALE, and the
// kernel looks the name up again); once the name is gone, its write
// handles' sessionmgr.Draft, and for readers the attributes it last
// answered, stand for the file until the last close.
//
// # Locking
//
// A file node's mutex guards only what it remembers (its last name and
// answer, its write handles' draft) and is never held across a call into
// sessionmgr; its pending state is its sessionmgr.Draft, which serializes
// itself.
package fs
