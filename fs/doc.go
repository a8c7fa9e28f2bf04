// Package fs is the FUSE face of clfs: libraries are top-level
// directories, items are sub-directories, files live in items.
//
// Every node method decodes its arguments, makes one call into
// sessionmgr, fills the reply and returns toErrno(err). What a write, a
// close or a rename means for update and download sessions is decided in
// sessionmgr (see its Draft); nothing here touches the catalog or the
// storage directory.
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
// # Locking
//
// Nodes hold no locks of their own; a file node's pending state is its
// sessionmgr.Draft, which serializes itself.
package fs
