package meta

// The catalog's rows (see Records in the package doc). sessionmgr decides
// what a valid record is.

// Attr is the POSIX view kept for libraries, items and files so the mount
// can return exactly what chmod, chown and utimens set.
type Attr struct {
	Mode  uint32 `json:"mode"`
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	Mtime int64  `json:"mtime"`
	Ctime int64  `json:"ctime"`
	// Atime is the access time as utimensat(2) last set it; nil when it
	// never was (records of earlier releases, fresh API uploads), and it
	// then reads as Mtime. Reads do not move it: the mount is noatime.
	Atime *int64 `json:"atime,omitempty"`
}

// Checksum is a digest as a client asked for it (algorithm + lowercase hex).
type Checksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"value"`
}

// Backing is a directory holding committed content and staging.
type Backing struct {
	ID   uint64 `json:"id"`
	Root string `json:"root"`
}

type Library struct {
	ID               uint64 `json:"id"`
	UUID             string `json:"uuid"`
	Name             string `json:"name"`
	Description      string `json:"description"`
	BackingID        uint64 `json:"backing_id"`
	CreationTime     int64  `json:"creation_time"`
	LastModifiedTime int64  `json:"last_modified_time"`
	Version          uint64 `json:"version"`
	Attr             Attr   `json:"attr"`
	// Deleting: hidden (HideLibrary), its items being deleted.
	Deleting bool `json:"deleting,omitempty"`
}

type Item struct {
	ID               uint64 `json:"id"`
	UUID             string `json:"uuid"`
	LibraryID        uint64 `json:"library_id"`
	Name             string `json:"name"`
	Description      string `json:"description"`
	Type             string `json:"type"`
	ContentVersion   uint64 `json:"content_version"`
	MetadataVersion  uint64 `json:"metadata_version"`
	Version          uint64 `json:"version"`
	CreationTime     int64  `json:"creation_time"`
	LastModifiedTime int64  `json:"last_modified_time"`
	Attr             Attr   `json:"attr"`
	// Size is the sum of the file table's sizes, kept by every change
	// to it, so that stat of an item does not read its whole table.
	// Items created before it was kept have SizeKnown false.
	Size      int64 `json:"size,omitempty"`
	SizeKnown bool  `json:"size_known,omitempty"`
	// Deleting: hidden (HideItem), its files being deleted.
	Deleting bool `json:"deleting,omitempty"`
	// FileTable is the id of the item's file table, when it is not the
	// item's own id: a commit too large for one transaction builds a
	// new table and switches the item to it (Table, UseTable).
	FileTable uint64 `json:"file_table,omitempty"`
}

// Table is the id of the item's file table: the prefix of its files'
// keys.
func (it *Item) Table() uint64 {
	if it.FileTable != 0 {
		return it.FileTable
	}
	return it.ID
}

// AddSize keeps Size in step with a change of the file table.
func (it *Item) AddSize(delta int64) {
	if it.SizeKnown {
		it.Size += delta
	}
}

// File is one row of an item's committed file table.
type File struct {
	ID        uint64    `json:"id"`
	ItemID    uint64    `json:"item_id"`
	Name      string    `json:"name"`
	Size      int64     `json:"size"`
	Version   uint64    `json:"version"`
	SHA256    []byte    `json:"sha256"`
	Requested *Checksum `json:"requested,omitempty"`
	BackingID uint64    `json:"backing_id"`
	Attr      Attr      `json:"attr"`
	// Table is the file table the record was read from (AllFiles): an
	// item's, or one being built or swept. Not stored.
	Table uint64 `json:"-"`
}

// SessionHeader is what update and download sessions both record.
// Embedded, its fields are stored flat, first, as they were before it
// existed.
type SessionHeader struct {
	ID                 uint64 `json:"id"`
	UUID               string `json:"uuid"`
	ItemID             uint64 `json:"item_id"`
	ItemContentVersion uint64 `json:"item_content_version"`
	State              string `json:"state"`
	ErrorMessage       string `json:"error_message,omitempty"`
	ClientProgress     int64  `json:"client_progress"`
	ExpirationTime     int64  `json:"expiration_time"`
	CreationTime       int64  `json:"creation_time"`
	// Owner tags the sessions a mount opened for itself ("" for API
	// clients), so that the next start knows whose client is gone.
	Owner string `json:"owner,omitempty"`
	// Node is the daemon that holds the session's live state (open
	// uploads, activity not yet stored); 0 in records of earlier
	// releases, which had one daemon per catalog.
	Node uint64 `json:"node,omitempty"`
}

// Header gives code shared by both kinds of session their common fields.
func (h *SessionHeader) Header() *SessionHeader { return h }

// Session is an update or a download session's record.
type Session interface {
	Header() *SessionHeader
	Kind() SessionKind
}

type UpdateSession struct {
	SessionHeader
	WarningBehavior       []string `json:"warning_behavior,omitempty"`
	WarningBehaviorIgnore []bool   `json:"warning_behavior_ignore,omitempty"`
	// CompletePending: complete was called while server-side pulls were
	// still running; the session commits (or fails) when the last ends.
	CompletePending bool `json:"complete_pending,omitempty"`
}

// UpdateSessionFile is a pending change of an update session: an added
// (or replacing) file, or a removal. Untouched files of the item are not
// stored; the session's view is the item's table overlaid with these.
type UpdateSessionFile struct {
	SessionID        uint64    `json:"session_id"`
	Name             string    `json:"name"`
	Removed          bool      `json:"removed,omitempty"`
	SourceType       string    `json:"source_type,omitempty"`
	ExpectedSize     *int64    `json:"expected_size,omitempty"`
	Requested        *Checksum `json:"requested,omitempty"`
	Status           string    `json:"status,omitempty"`
	ErrorMessage     string    `json:"error_message,omitempty"`
	BytesTransferred int64     `json:"bytes_transferred"`
	Size             int64     `json:"size"`
	SHA256           []byte    `json:"sha256,omitempty"`
	Staging          string    `json:"staging,omitempty"`
	// Inline: the finished bytes are in the catalog (StagedBytes), not
	// at Staging; small uploads are staged in memory until Finish.
	Inline bool  `json:"inline,omitempty"`
	Attr   *Attr `json:"attr,omitempty"`
	// Source is where the server pulls a PULL file from.
	Source *TransferEndpointRecord `json:"source,omitempty"`
}

// TransferEndpointRecord is a transfer endpoint as a client gave it.
type TransferEndpointRecord struct {
	URI            string `json:"uri"`
	Thumbprint     string `json:"ssl_certificate_thumbprint,omitempty"`
	CertificatePEM string `json:"ssl_certificate,omitempty"`
}

type DownloadSession struct {
	SessionHeader
	// Pinned is true while the session holds references on its files'
	// content; it drops them when it leaves ACTIVE.
	Pinned bool `json:"pinned"`
	// PinOnOpen: files are pinned as they are first opened, not all at
	// creation (the mount's read sessions: one file of a large item).
	PinOnOpen bool `json:"pin_on_open,omitempty"`
	// Unpinning: the session holds more pins than one transaction can
	// drop; the sweep drops them in batches (HidePins).
	Unpinning bool `json:"unpinning,omitempty"`
	// Pinning: the session is being created, its pins taken in batches
	// (sessionmgr's bigpin.go); no client sees it yet.
	Pinning bool `json:"pinning,omitempty"`
}

func (*UpdateSession) Kind() SessionKind   { return UpdateSessionKind }
func (*DownloadSession) Kind() SessionKind { return DownloadSessionKind }

// DownloadSessionFile is a file as it was when its download session was
// created: the session serves exactly this content.
type DownloadSessionFile struct {
	SessionID        uint64 `json:"session_id"`
	Name             string `json:"name"`
	Size             int64  `json:"size"`
	Version          uint64 `json:"version"`
	SHA256           []byte `json:"sha256"`
	BackingID        uint64 `json:"backing_id"`
	FileID           uint64 `json:"file_id"`
	Attr             Attr   `json:"attr"`
	Status           string `json:"status"`
	ErrorMessage     string `json:"error_message,omitempty"`
	BytesTransferred int64  `json:"bytes_transferred"`
	// Unpinned: the sweep dropped this file's reference (the session
	// was Unpinning).
	Unpinned bool `json:"unpinned,omitempty"`
}

// ClientToken remembers what an idempotent create produced.
type ClientToken struct {
	UUID     string `json:"uuid"`
	SpecHash string `json:"spec_hash"`
	// Expires is when the token is forgotten (Unix ns; see
	// PutClientToken); 0 in records of earlier releases.
	Expires int64 `json:"expires,omitempty"`
}

// ContentRef counts the committed files and pinning download sessions that
// use one content blob on one backing.
type ContentRef struct {
	Refs int64 `json:"refs"`
	Size int64 `json:"size"`
	// Inline blobs live in the catalog (small files: their commit is
	// one synced transaction instead of a file, a link and three fsyncs).
	Inline bool `json:"inline,omitempty"`
}

// ContentKey names one content blob on one backing.
type ContentKey struct {
	BackingID uint64
	SHA256    []byte
}

// ExpiryEntry is one row of the expiry index.
type ExpiryEntry struct {
	At   int64
	Kind SessionKind
	ID   uint64
}
