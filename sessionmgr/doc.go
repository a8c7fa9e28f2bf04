// Package sessionmgr is the vSphere Content Library item API in Go:
// libraries, items and their files, the update sessions that change them
// and the download sessions that read them, with their state machines,
// expiry, checksums, staging, and committed content stored by SHA-256 on
// a storage backing. The mount (fs), the control socket and the REST
// server are front ends of one Manager: every rule of the API lives here,
// and only this package touches the catalog (meta).
//
// # Model
//
// An item's committed files change only through an update session. Files
// are added (uploaded by the client, PUSH, or fetched by the server,
// PULL) or removed; each added file is staged and judged on its way in
// (size, checksum); complete applies them all in one catalog transaction
// that bumps the item's content version. A download session pins the
// files of one content version, so that its readers read them to the end
// whatever commits meanwhile. Sessions expire when idle: the reaper moves
// them to their terminal state and removes their staging, and the record
// lingers one timeout more, so that get can still explain what happened.
//
// The mount writes through Drafts, one per file node: a draft joins the
// item's update session at its first change and commits its own file
// alone when the handle that changed it closes; the changes of other
// files move to a successor session.
//
// # State machines
//
// Session states and file statuses are tables in state.go; one function
// per table applies a move and refuses any other (checkUpdate,
// checkDownload, setTransferStatus, setPrepareStatus). Update sessions:
//
//	create --> ACTIVE --complete-----------------------------------> DONE
//	            |  |
//	            |  +--complete while PULL files are fetched--> ACTIVE (completing)
//	            |                                                 |
//	            |                     the last pull ends: commit  +--> DONE
//	            |                                                 |
//	            +--cancel, expire------------> CANCELED <---------+  cancel, expire
//	            +--fail, item deleted--------> ERROR    <---------+  fail, item deleted,
//	                                                                 a pull failed
//
//	in ACTIVE:              keep_alive, update, add and remove file,
//	                        validate, transfer (upload)
//	in ACTIVE (completing): keep_alive, validate; pulls go on
//	DONE, CANCELED, ERROR --delete, or the reaper a timeout later--> gone
//
// Download sessions:
//
//	create --> ACTIVE --cancel, expire-----> CANCELED
//	            |
//	            +------fail, item deleted--> ERROR
//
//	in ACTIVE:  keep_alive, prepare, transfer (read)
//	any state --delete, or the reaper a timeout after it ended--> gone
//
// Files of an update session:
//
//	add PUSH --> WAITING_FOR_TRANSFER --an upload opens--> TRANSFERRING
//	add PULL, or a change by the mount ------------------> TRANSFERRING
//	TRANSFERRING --size and checksum hold----------------> READY
//	TRANSFERRING --they do not, or staging failed--------> ERROR
//	READY, ERROR, TRANSFERRING --a new upload------------> TRANSFERRING
//	TRANSFERRING, VALIDATING, READY --lost by a restart--> ERROR
//
// (VALIDATING is never entered: a file is judged as its transfer ends.)
// Files of a download session:
//
//	pin --> UNPREPARED --prepare, or the first open--> PREPARED
//
// # Durability
//
// A commit of content (complete, and the mount's commit at close) syncs
// the catalog before it returns: what close(2) acknowledged survives a
// power cut. Namespace changes — rename, unlink, mkdir and rmdir of
// libraries and items, chmod, chown and utimens — are committed at once
// and in order but not each synced, as on ext4: they become durable with
// the next sync, which is any commit of content (Badger's log is
// ordered, so its sync covers everything committed before it),
// Manager.Sync (the mount's fsync and fsyncdir), or the syncer, at most
// half a second after the first change it has not synced; the syncer
// sleeps while nothing is pending, and Close syncs what is. A kill -9 of
// the process loses none of them (a transaction is in the kernel when
// the call returns); a power cut may lose the last second of them.
// Options.NamespaceSync syncs each one instead. A blob freed by such a
// change (an unlink, a rename over a name) is deleted only after the
// sync that makes the change durable; one still queued when the process
// dies is unreferenced, and the next Open sweeps it (durability.go).
//
// # Errors
//
// Every error is an API error: an *Error of a Kind (the API's error
// types), a *StateError (NotAllowedInCurrentState, naming the session,
// the operation and the state), or anything else, which is a server error
// (KindError). The causes a front end must tell apart travel inside them
// for errors.Is: ErrNoSpace, ErrChecksumMismatch, ErrSizeMismatch,
// ErrContentCorrupt, ErrNotEmpty, ErrNameTooLong, ErrReadOnly. The
// catalog's errors become the API's in one place, fromMeta, on the way out
// of every transaction: a transaction that kept conflicting is
// ConcurrentChange.
//
// A call's context reaches every catalog transaction it makes: one that
// ended (a FUSE interrupt, an HTTP client gone) stops a transaction
// before it commits and the call fails with an error wrapping ctx.Err(),
// having changed nothing. Steps that follow a committed transaction, or
// that cannot be undone once begun (a sealed upload, the commit at close,
// an unlink that detached its draft), run to the end under
// context.WithoutCancel (see catalog in manager.go).
//
// A Manager opened with Options.ReadOnly refuses every change with
// KindUnauthorized and ErrReadOnly, and serves reads, download sessions
// and fsck.
//
// # Locking
//
// Every mutex of the package, in the one order in which they are taken,
// first to last: a goroutine holding one takes only those after it.
//
//	Draft.mu                   one draft at a time
//	mountItem.mu               one item at a time
//	Manager.pendingMu
//	Manager.contentLocks       several, by ascending stripe (lockContent)
//	DownloadReader.closeMu     a sync.Once, whose Do runs Close locked
//	Manager.mu
//	StagedFile.mu              one staged file at a time
//	DownloadReader.verifyMu    never with raMu
//	DownloadReader.raMu
//	hashPipe.stopOnce
//	FakeClock.mu
//	durability.mu              inside catalog calls; takes nothing else
//
// After them all, inside catalog calls, come meta's record cache and
// Badger. Manager.mu guards only in-memory maps and is never held across
// a catalog transaction; the I/O under it is that of closing staged
// files at Close. StagedFile.mu is held across the staging file's I/O
// (writes, spill, fsync) and verifyMu across reading the blob the hash
// has to catch up on.
//
// Four locks are held, on purpose, across a commit's fsyncs and its
// catalog transaction:
//
//   - the content locks of the blobs a commit places: dropUnreferenced
//     re-checks a blob's references under the same lock before unlinking
//     it, so a blob placed by one session cannot go, through another that
//     dropped its last reference, before the commit references it;
//   - Draft.mu: until the catalog has a new name, ItemEntry finds it among
//     the drafts, so that the name is always in one or the other; and the
//     last close of a draft decides and commits under it, so that the next
//     writer's O_TRUNC cannot slip in between;
//   - mountItem.mu: a commit plans which changes it applies and which its
//     successor carries, then applies them; a change that joined the
//     session in between would be in neither;
//   - Manager.pendingMu: of two pulls that end together, the later one
//     sees the commit or failure of the earlier one.
//
// # Files
//
//	doc.go            this overview
//	manager.go        Options, Open and Close, the catalog wrapper, API ids and client tokens
//	durability.go     namespace changes buffered and synced within a second; freed blobs wait for the sync
//	errors.go         error kinds, sentinels and causes; fromMeta, the catalog's errors as the API's
//	state.go          the state machines of sessions and file statuses
//	types.go          the API's models, as the REST API names them
//	library.go        libraries
//	item.go           items
//	file.go           an item's committed files and their storage
//	names.go          valid names of libraries, items and files
//	posix.go          mode, owner and times: setattr and the POSIX rules of times
//	session.go        what update and download sessions share: keep_alive, end, delete, expiry
//	update.go         update sessions
//	sessionfiles.go   the files of an update session: add, remove, the session's view, validate
//	upload.go         OpenUpload: the staged file of a PUSH file
//	staged.go         StagedFile: bytes on their way in, in memory or in a staging file
//	hashpipe.go       hashing staged bytes on a goroutine beside the copy
//	finish.go         the end of a transfer: seal and verdict
//	pull.go           PULL files: fetching from http, https and file sources; probe
//	complete.go       complete, and the pending complete of PULL files
//	commit.go         the commit of a session's changes, all or some, and its failure
//	successor.go      successor sessions: the changes a partial commit carries on
//	download.go       download sessions: create, pins, prepare
//	downloadreader.go reading pinned content, checked against its SHA-256
//	content.go        the backing's layout: content blobs, staging, content locks
//	checksum.go       the API's checksum algorithms
//	ovf.go            validate's check of the files an OVF descriptor names
//	reaper.go         expiry of idle sessions
//	recover.go        Open's recovery after a process died
//	fsck.go           re-hashing stored content, checking references
//	notify.go         changes told to front ends that cache (the mount's kernel)
//	clock.go          the Clock, and a FakeClock for tests
//	mountsession.go   the mount's update session on an item, shared by its drafts
//	draft.go          Draft: a file node's change not committed yet; RenameFile
//	namespace.go      unlink: RemoveFile
//	listing.go        what the mount lists of an item
//	allocate.go       fallocate(2) on a draft
//	orphan.go         unlinked files still open
//	fsops.go          what only the mount asks: rmdir, statfs, shared read sessions, xattrs
package sessionmgr
