package meta

// The key schema, written once. Every key starts with a one-byte kind;
// integers are big-endian so that byte order is numeric order and prefix
// scans come out sorted.
//
//	kind  key layout                                      value
//	----  ----------------------------------------------  ------------------------
//	'q'   'q' "ids"                                       ID counter: next free batch, uint64 big-endian
//	'L'   'L' libID(8)                                    Library
//	'n'   'n' lower(libName)                              libID(8)  name index
//	'B'   'B' backingID(8)                                Backing
//	'b'   'b' root path                                   backingID(8)
//	'I'   'I' itemID(8)                                   Item
//	'i'   'i' libID(8) lower(itemName)                    itemID(8) per-library name index
//	'F'   'F' tableID(8) fileName                         File (a committed file table: Item.Table)
//	'w'   'w' tableID(8)                                  empty  rewritten by every change to the table
//	'U'   'U' sessionID(8)                                UpdateSession
//	'f'   'f' sessionID(8) fileName                       UpdateSessionFile (pending change)
//	'A'   'A' itemID(8)                                   sessionID(8) of the item's ACTIVE update session
//	'D'   'D' sessionID(8)                                DownloadSession
//	'd'   'd' sessionID(8) fileName                       DownloadSessionFile (pinned content)
//	'j'   'j' itemID(8) sessionID(8)                      empty  the item's download sessions
//	'v'   'v' name                                        empty  a format step done (formatSteps)
//	'E'   'E' unixNano(8) sessionKind(1) sessionID(8)     empty  expiry index
//	'T'   'T' op(1) token                                 ClientToken (forgotten after 24 h)
//	't'   't' unixNano(8) op(1) token                     empty  client token expiry index
//	'u'   'u' uuid                                        kind(1) id(8)  API id index
//	'R'   'R' backingID(8) sha256(32)                     ContentRef (reference count)
//	'C'   'C' backingID(8) sha256(32)                     raw bytes of a small blob stored inline
//	'S'   'S' sessionID(8) fileName                       raw staged bytes of a small finished upload
//	'N'   'N' nodeID(8)                                   Node (a daemon sharing the catalog)
//	'l'   'l' "leader"                                    Leader (which node cleans up for all)
//	'X'   'X' backingID(8) sha256(32)                     FreedContent (a blob file awaiting deletion)
//	'Z'   'Z' kind(1) id(8)                               empty  a library ('L') or item ('I') being deleted;
//	                                                      for a file table ('F'): the update session
//	                                                      building it (8), or empty once it is garbage;
//	                                                      for a download session ('D'): its pins being dropped
//
// One constructor per kind of key follows, and a parser for those read
// back from scans.

import (
	"bytes"
	"encoding/binary"
	"strings"
)

const (
	kindSequence     = 'q'
	kindLibrary      = 'L'
	kindLibraryName  = 'n'
	kindBacking      = 'B'
	kindBackingRoot  = 'b'
	kindItem         = 'I'
	kindItemName     = 'i'
	kindFile         = 'F'
	kindUpdate       = 'U'
	kindUpdateFile   = 'f'
	kindActiveUpdate = 'A'
	kindDownload     = 'D'
	kindDownloadFile = 'd'
	// kindItemDownload indexes download sessions by item.
	kindItemDownload = 'j'
	// kindFormat marks an upgrade of the catalog's format as done.
	kindFormat      = 'v'
	kindExpiry      = 'E'
	kindClientToken = 'T'
	// kindClientTokenExpiry orders tokens by expiry; tokens written
	// before it existed expire by Badger's TTL instead.
	kindClientTokenExpiry = 't'
	kindUUID              = 'u'
	kindContentRef        = 'R'
	kindInlineBlob        = 'C'
	kindStagedBytes       = 'S'
	kindNode              = 'N'
	kindLeader            = 'l'
	// kindFreedContent lists blob files no reference holds any more, on
	// catalogs several nodes share: only the leader deletes them, after
	// a grace period (sessionmgr's node.go).
	kindFreedContent = 'X'
	// kindHidden lists libraries and items hidden for deletion whose
	// records are still being removed (store.go's HideItem).
	kindHidden = 'Z'
	// kindTableStamp is written, blind, with every change to a file
	// table: whoever copies a table in several transactions tells by
	// its version whether the table changed meanwhile (TableStamp).
	kindTableStamp = 'w'
)

// SessionKind tells update and download sessions apart in shared indexes.
type SessionKind byte

const (
	UpdateSessionKind   SessionKind = 'U'
	DownloadSessionKind SessionKind = 'D'
)

func u64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func sequenceKey() []byte { return []byte{kindSequence, 'i', 'd', 's'} }

func libraryKey(id uint64) []byte          { return u64([]byte{kindLibrary}, id) }
func libraryPrefix() []byte                { return []byte{kindLibrary} }
func libraryNameKey(name string) []byte    { return append([]byte{kindLibraryName}, foldName(name)...) }
func backingKey(id uint64) []byte          { return u64([]byte{kindBacking}, id) }
func backingPrefix() []byte                { return []byte{kindBacking} }
func backingRootKey(root string) []byte    { return append([]byte{kindBackingRoot}, root...) }
func itemKey(id uint64) []byte             { return u64([]byte{kindItem}, id) }
func itemPrefix() []byte                   { return []byte{kindItem} }
func itemNamePrefix(libID uint64) []byte   { return u64([]byte{kindItemName}, libID) }
func fileTablePrefix(table uint64) []byte  { return u64([]byte{kindFile}, table) }
func filePrefix() []byte                   { return []byte{kindFile} }
func updateKey(id uint64) []byte           { return u64([]byte{kindUpdate}, id) }
func updatePrefix() []byte                 { return []byte{kindUpdate} }
func updateFilePrefix(id uint64) []byte    { return u64([]byte{kindUpdateFile}, id) }
func activeUpdateKey(itemID uint64) []byte { return u64([]byte{kindActiveUpdate}, itemID) }
func downloadKey(id uint64) []byte         { return u64([]byte{kindDownload}, id) }
func downloadPrefix() []byte               { return []byte{kindDownload} }
func downloadFilePrefix(id uint64) []byte  { return u64([]byte{kindDownloadFile}, id) }
func expiryPrefix() []byte                 { return []byte{kindExpiry} }
func itemDownloadPrefix(itemID uint64) []byte {
	return u64([]byte{kindItemDownload}, itemID)
}
func itemDownloadKey(itemID, sessionID uint64) []byte {
	return u64(itemDownloadPrefix(itemID), sessionID)
}
func formatKey(step string) []byte { return append([]byte{kindFormat}, step...) }
func uuidKey(uuid string) []byte   { return append([]byte{kindUUID}, uuid...) }
func contentRefPrefix() []byte     { return []byte{kindContentRef} }

func itemNameKey(libID uint64, name string) []byte {
	return append(itemNamePrefix(libID), foldName(name)...)
}

func fileKey(table uint64, name string) []byte {
	return append(fileTablePrefix(table), name...)
}

func tableStampKey(table uint64) []byte { return u64([]byte{kindTableStamp}, table) }

func updateFileKey(sessionID uint64, name string) []byte {
	return append(updateFilePrefix(sessionID), name...)
}

func downloadFileKey(sessionID uint64, name string) []byte {
	return append(downloadFilePrefix(sessionID), name...)
}

// expiryKey orders sessions by the instant they expire, so the reaper reads
// only the due prefix of the index.
func expiryKey(at int64, kind SessionKind, id uint64) []byte {
	k := u64([]byte{kindExpiry}, uint64(at))
	k = append(k, byte(kind))
	return u64(k, id)
}

func parseExpiryKey(k []byte) (at int64, kind SessionKind, id uint64, ok bool) {
	if len(k) != 1+8+1+8 || k[0] != kindExpiry {
		return 0, 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(k[1:9])), SessionKind(k[9]), binary.BigEndian.Uint64(k[10:]), true
}

func clientTokenKey(op byte, token string) []byte {
	return append([]byte{kindClientToken, op}, token...)
}

func clientTokenExpiryPrefix() []byte { return []byte{kindClientTokenExpiry} }

func clientTokenExpiryKey(at int64, op byte, token string) []byte {
	return append(u64([]byte{kindClientTokenExpiry}, uint64(at)), append([]byte{op}, token...)...)
}

func parseClientTokenExpiryKey(k []byte) (at int64, op byte, token string, ok bool) {
	if len(k) < 1+8+1 || k[0] != kindClientTokenExpiry {
		return 0, 0, "", false
	}
	return int64(binary.BigEndian.Uint64(k[1:9])), k[9], string(k[10:]), true
}

func inlineBlobKey(backingID uint64, sha []byte) []byte {
	return append(u64([]byte{kindInlineBlob}, backingID), sha...)
}

func stagedBytesPrefix(sessionID uint64) []byte { return u64([]byte{kindStagedBytes}, sessionID) }

func stagedBytesKey(sessionID uint64, name string) []byte {
	return append(stagedBytesPrefix(sessionID), name...)
}

func contentRefKey(backingID uint64, sha []byte) []byte {
	return append(u64([]byte{kindContentRef}, backingID), sha...)
}

func parseContentRefKey(k []byte) (backingID uint64, sha []byte, ok bool) {
	if len(k) != 1+8+32 || k[0] != kindContentRef {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(k[1:9]), bytes.Clone(k[9:]), true
}

func nodeKey(id uint64) []byte { return u64([]byte{kindNode}, id) }
func nodePrefix() []byte       { return []byte{kindNode} }
func leaderKey() []byte        { return []byte{kindLeader, 'l', 'e', 'a', 'd', 'e', 'r'} }

func freedContentKey(backingID uint64, sha []byte) []byte {
	return append(u64([]byte{kindFreedContent}, backingID), sha...)
}

func freedContentPrefix() []byte { return []byte{kindFreedContent} }

func hiddenKey(kind ObjectKind, id uint64) []byte { return u64([]byte{kindHidden, byte(kind)}, id) }
func hiddenPrefix() []byte                        { return []byte{kindHidden} }

func parseFreedContentKey(k []byte) (backingID uint64, sha []byte, ok bool) {
	if len(k) != 1+8+32 || k[0] != kindFreedContent {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(k[1:9]), bytes.Clone(k[9:]), true
}

// foldName is the case-insensitive form used by name indexes.
func foldName(name string) string { return strings.ToLower(name) }
