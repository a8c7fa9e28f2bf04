package sessionmgr

import "time"

// The types below are the API's models. JSON names are the vSphere REST
// names, so the CLI's --json, the control socket and the REST server print
// the same fields. Counters are decimal strings, as the API has them.
// Fields prefixed x_ are clfs extensions (spec §12 #25).

// Posix is what the mount needs beyond the API: a stable inode number and
// the attributes chmod, chown and utimens set.
type Posix struct {
	Ino   uint64    `json:"ino"`
	Mode  uint32    `json:"mode"`
	UID   uint32    `json:"uid"`
	GID   uint32    `json:"gid"`
	Mtime time.Time `json:"mtime"`
	Ctime time.Time `json:"ctime"`
	// Atime is the access time utimensat(2) set, else Mtime.
	Atime time.Time `json:"atime,omitzero"`
}

// Message is a LocalizableMessage.
type Message struct {
	ID             string   `json:"id"`
	DefaultMessage string   `json:"default_message"`
	Args           []string `json:"args"`
}

func newMessage(id, text string) *Message {
	if text == "" {
		return nil
	}
	return &Message{ID: id, DefaultMessage: text, Args: []string{}}
}

// ChecksumInfo is a digest and its algorithm (SHA1, MD5, SHA256, SHA512).
type ChecksumInfo struct {
	Algorithm string `json:"algorithm,omitempty"`
	Checksum  string `json:"checksum"`
}

// StorageBacking is where a library keeps its content.
type StorageBacking struct {
	Type        string `json:"type"`
	StorageURI  string `json:"storage_uri,omitempty"`
	DatastoreID string `json:"datastore_id,omitempty"`
}

// TransferEndpoint is where bytes are sent to or fetched from (spec
// §5.1). For https, SSLCertificateThumbprint (SHA-1 or SHA-256 of the
// DER, hex, ':' optional) or SSLCertificate (PEM) replace the usual
// certificate validation.
type TransferEndpoint struct {
	URI                      string `json:"uri"`
	SSLCertificateThumbprint string `json:"ssl_certificate_thumbprint,omitempty"`
	SSLCertificate           string `json:"ssl_certificate,omitempty"`
}

// ProbeStatus is the verdict of a probe of a transfer endpoint.
type ProbeStatus string

const (
	ProbeSuccess            ProbeStatus = "SUCCESS"
	ProbeInvalidURL         ProbeStatus = "INVALID_URL"
	ProbeTimedOut           ProbeStatus = "TIMED_OUT"
	ProbeHostNotFound       ProbeStatus = "HOST_NOT_FOUND"
	ProbeResourceNotFound   ProbeStatus = "RESOURCE_NOT_FOUND"
	ProbeInvalidCredentials ProbeStatus = "INVALID_CREDENTIALS"
	ProbeCertificateError   ProbeStatus = "CERTIFICATE_ERROR"
	ProbeUnknownError       ProbeStatus = "UNKNOWN_ERROR"
)

// ProbeResult is updatesession.File.ProbeResult. For https endpoints
// SSLThumbprint (SHA-1, colon-separated upper-case hex, as vCenter
// prints it) and SSLCertificate (PEM) describe the server's leaf
// certificate, whether or not it was trusted: a client shown
// CERTIFICATE_ERROR can check them and add the file with the thumbprint.
type ProbeResult struct {
	Status         ProbeStatus `json:"status"`
	SSLThumbprint  string      `json:"ssl_thumbprint,omitempty"`
	SSLCertificate string      `json:"ssl_certificate,omitempty"`
	ErrorMessages  []Message   `json:"error_messages"`
}

type Library struct {
	ID               string           `json:"id"`
	Name             string           `json:"name"`
	Description      string           `json:"description"`
	Type             string           `json:"type"`
	StorageBackings  []StorageBacking `json:"storage_backings"`
	CreationTime     time.Time        `json:"creation_time"`
	LastModifiedTime time.Time        `json:"last_modified_time"`
	Version          string           `json:"version"`
	Posix            Posix            `json:"x_posix"`
}

// LibraryCreateSpec creates a local library. StorageDir is the directory
// of its storage backing; empty means the home's storage/.
type LibraryCreateSpec struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	StorageDir  string `json:"storage_dir,omitempty"`
	// StorageBackings is the API's way to say the same: at most one, of
	// type OTHER with a file:// storage_uri.
	StorageBackings []StorageBacking `json:"storage_backings,omitempty"`
}

// LibraryUpdateSpec is incremental: nil fields are left unchanged. A
// non-empty Version must equal the current one (ConcurrentChange).
type LibraryUpdateSpec struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
	Version     string  `json:"version,omitempty"`
}

// LibraryFindSpec: every set field must match; name and type are
// case-insensitive.
type LibraryFindSpec struct {
	Name *string `json:"name,omitempty"`
	Type *string `json:"type,omitempty"`
}

type Item struct {
	ID               string    `json:"id"`
	LibraryID        string    `json:"library_id"`
	Name             string    `json:"name"`
	Description      string    `json:"description"`
	Type             string    `json:"type"`
	ContentVersion   string    `json:"content_version"`
	MetadataVersion  string    `json:"metadata_version"`
	Version          string    `json:"version"`
	CreationTime     time.Time `json:"creation_time"`
	LastModifiedTime time.Time `json:"last_modified_time"`
	Cached           bool      `json:"cached"`
	Size             int64     `json:"size"`
	Posix            Posix     `json:"x_posix"`
}

type ItemCreateSpec struct {
	LibraryID   string `json:"library_id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Type        string `json:"type,omitempty"`
}

// ItemUpdateSpec is incremental; a non-empty Version must equal the
// current one (InvalidArgument otherwise, as the item API says).
type ItemUpdateSpec struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
	Type        *string `json:"type,omitempty"`
	Version     string  `json:"version,omitempty"`
}

type ItemFindSpec struct {
	Name      *string `json:"name,omitempty"`
	LibraryID *string `json:"library_id,omitempty"`
	SourceID  *string `json:"source_id,omitempty"`
	Type      *string `json:"type,omitempty"`
	Cached    *bool   `json:"cached,omitempty"`
}

// File is a committed file of an item (library.item.File.Info).
// ChecksumInfo is always the SHA-256 clfs computed; RequestedChecksum is
// the digest the uploading client asked to be verified, if any.
type File struct {
	Name              string        `json:"name"`
	Size              int64         `json:"size"`
	Cached            bool          `json:"cached"`
	Version           string        `json:"version"`
	ChecksumInfo      *ChecksumInfo `json:"checksum_info,omitempty"`
	RequestedChecksum *ChecksumInfo `json:"x_requested_checksum,omitempty"`
	Posix             Posix         `json:"x_posix"`
}

// Storage is one copy of a file on a storage backing.
type Storage struct {
	Name           string         `json:"name"`
	Size           int64          `json:"size"`
	Cached         bool           `json:"cached"`
	Version        string         `json:"version"`
	ChecksumInfo   *ChecksumInfo  `json:"checksum_info,omitempty"`
	StorageBacking StorageBacking `json:"storage_backing"`
	StorageURIs    []string       `json:"storage_uris"`
}

type WarningBehavior struct {
	Type    string `json:"type"`
	Ignored bool   `json:"ignored"`
}

type PreviewInfo struct {
	State string `json:"state"`
}

// SessionHeader is what the models of update and download sessions share.
// Embedded first, its fields come first in their JSON, flat, as the API
// has them.
type SessionHeader struct {
	ID                        string    `json:"id"`
	LibraryItemID             string    `json:"library_item_id"`
	LibraryItemContentVersion string    `json:"library_item_content_version"`
	ErrorMessage              *Message  `json:"error_message,omitempty"`
	ClientProgress            int64     `json:"client_progress"`
	State                     State     `json:"state"`
	ExpirationTime            time.Time `json:"expiration_time"`
}

type UpdateSession struct {
	SessionHeader
	PreviewInfo     PreviewInfo       `json:"preview_info"`
	WarningBehavior []WarningBehavior `json:"warning_behavior"`
	// BytesTransferred sums its files' bytes_transferred (clfs extension,
	// what `clfs session ls` shows while a copy runs).
	BytesTransferred int64 `json:"x_bytes_transferred"`
}

type UpdateSessionCreateSpec struct {
	LibraryItemID   string            `json:"library_item_id"`
	WarningBehavior []WarningBehavior `json:"warning_behavior,omitempty"`
}

type UpdateSessionUpdateSpec struct {
	WarningBehavior []WarningBehavior `json:"warning_behavior,omitempty"`
}

// Source types of an update-session file.
const (
	SourceNone = "NONE"
	SourcePush = "PUSH"
	SourcePull = "PULL"
)

// FileAddSpec is updatesession.File.AddSpec. Posix, when set, gives the
// mode, owner and mtime the file gets at commit (a clfs extension used by
// the mount and by import).
type FileAddSpec struct {
	Name           string            `json:"name"`
	SourceType     string            `json:"source_type"`
	SourceEndpoint *TransferEndpoint `json:"source_endpoint,omitempty"`
	Size           *int64            `json:"size,omitempty"`
	ChecksumInfo   *ChecksumInfo     `json:"checksum_info,omitempty"`
	Posix          *Posix            `json:"x_posix,omitempty"`
}

// UpdateSessionFile is updatesession.File.Info.
type UpdateSessionFile struct {
	Name             string            `json:"name"`
	SourceType       string            `json:"source_type"`
	Size             *int64            `json:"size,omitempty"`
	ChecksumInfo     *ChecksumInfo     `json:"checksum_info,omitempty"`
	SourceEndpoint   *TransferEndpoint `json:"source_endpoint,omitempty"`
	UploadEndpoint   *TransferEndpoint `json:"upload_endpoint,omitempty"`
	BytesTransferred int64             `json:"bytes_transferred"`
	Status           TransferStatus    `json:"status"`
	ErrorMessage     *Message          `json:"error_message,omitempty"`
	KeepInStorage    bool              `json:"keep_in_storage"`
}

type ValidationError struct {
	Name         string  `json:"name"`
	ErrorMessage Message `json:"error_message"`
}

type ValidationResult struct {
	HasErrors    bool              `json:"has_errors"`
	MissingFiles []string          `json:"missing_files"`
	InvalidFiles []ValidationError `json:"invalid_files"`
}

type DownloadSession struct {
	SessionHeader
	BytesTransferred int64 `json:"x_bytes_transferred"`
}

type DownloadSessionCreateSpec struct {
	LibraryItemID string `json:"library_item_id"`
}

// Endpoint types of a download-session prepare.
const (
	EndpointHTTPS  = "HTTPS"
	EndpointDirect = "DIRECT"
)

// DownloadSessionFile is downloadsession.File.Info.
type DownloadSessionFile struct {
	Name             string            `json:"name"`
	Size             int64             `json:"size"`
	BytesTransferred int64             `json:"bytes_transferred"`
	Status           PrepareStatus     `json:"status"`
	DownloadEndpoint *TransferEndpoint `json:"download_endpoint,omitempty"`
	ChecksumInfo     *ChecksumInfo     `json:"checksum_info,omitempty"`
	ErrorMessage     *Message          `json:"error_message,omitempty"`
	Version          string            `json:"x_version"`
}
