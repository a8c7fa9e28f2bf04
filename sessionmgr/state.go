package sessionmgr

import (
	"cmp"
	"slices"

	"clfs/meta"
)

// State is the state of an update or download session, named as the API
// names it.
type State string

const (
	StateActive State = "ACTIVE"
	StateDone   State = "DONE"
	// StateFailed is the API's ERROR: failed by the client, a transfer or the server.
	StateFailed   State = "ERROR"
	StateCanceled State = "CANCELED"
)

// stateCompleting is an ACTIVE update session whose complete waits for
// server-side pulls (spec §6.4, PULL case): the API shows it ACTIVE, but
// it takes no more changes. It is never stored; updateState derives it.
const stateCompleting State = "ACTIVE (completing)"

// Terminal reports whether no operation can move the session any more.
func (s State) Terminal() bool { return s != StateActive && s != stateCompleting }

// TransferStatus is the status of one file of an update session.
type TransferStatus string

const (
	TransferWaiting      TransferStatus = "WAITING_FOR_TRANSFER"
	TransferTransferring TransferStatus = "TRANSFERRING"
	TransferValidating   TransferStatus = "VALIDATING"
	TransferReady        TransferStatus = "READY"
	TransferError        TransferStatus = "ERROR"
)

// PrepareStatus is the status of one file of a download session.
type PrepareStatus string

const (
	PrepareUnprepared PrepareStatus = "UNPREPARED"
	PrepareRequested  PrepareStatus = "PREPARE_REQUESTED"
	Preparing         PrepareStatus = "PREPARING"
	Prepared          PrepareStatus = "PREPARED"
	PrepareError      PrepareStatus = "ERROR"
)

// statusMoves is the state machine of a file's status: the statuses each
// one may move to. "" is the status of a record not stored yet.
type statusMoves[S ~string] map[S][]S

// transferMoves is the life of a file of an update session (spec §7.5).
// Added, a PUSH file waits for its bytes and a PULL file is fetched at
// once; the verdict at the end of the transfer (size, checksum, I/O) makes
// it READY or ERROR, and the mount's commit records its own upload READY
// directly. A new upload restarts the file from any status. A restart of
// clfs puts a transfer it interrupted, or a READY file whose staged bytes
// are gone, in ERROR (recover.go). VALIDATING is never entered: clfs
// validates at the end of the transfer, in the same step.
var transferMoves = statusMoves[TransferStatus]{
	"":                   {TransferWaiting, TransferTransferring},
	TransferWaiting:      {TransferTransferring},
	TransferTransferring: {TransferTransferring, TransferReady, TransferError},
	TransferValidating:   {TransferError},
	TransferReady:        {TransferTransferring, TransferError},
	TransferError:        {TransferTransferring},
}

// prepareMoves is the life of a file of a download session (spec §8.4):
// pinned UNPREPARED, PREPARED by prepare or by the first open. Content
// is on local disk, so it never waits in PREPARE_REQUESTED or PREPARING,
// and preparing cannot fail.
var prepareMoves = statusMoves[PrepareStatus]{
	"":                {PrepareUnprepared},
	PrepareUnprepared: {Prepared},
	Prepared:          {Prepared},
}

// move sets *status to to, or refuses a move the table lacks: that is a
// bug of clfs, not something a client can ask for, so a server error.
func (t statusMoves[S]) move(file string, status *string, to S) error {
	from := S(*status)
	if !slices.Contains(t[from], to) {
		return errorf(KindError, "file %q cannot go from status %s to %s", file, cmp.Or(string(from), "(none)"), to)
	}
	*status = string(to)
	return nil
}

// setTransferStatus moves a file of an update session to status to.
func setTransferStatus(f *meta.UpdateSessionFile, to TransferStatus) error {
	return transferMoves.move(f.Name, &f.Status, to)
}

// setPrepareStatus moves a file of a download session to status to.
func setPrepareStatus(f *meta.DownloadSessionFile, to PrepareStatus) error {
	return prepareMoves.move(f.Name, &f.Status, to)
}

// shownTransferStatus is a file's status as the API shows it: a WAITING
// file whose upload is already open (live) is TRANSFERRING, a moment
// before its record says so.
func shownTransferStatus(f *meta.UpdateSessionFile, live bool) TransferStatus {
	if s := TransferStatus(f.Status); s != TransferWaiting || !live {
		return s
	}
	return TransferTransferring
}

// Session operations, as named in transition tables and StateErrors.
const (
	opKeepAlive   = "keep_alive"
	opUpdate      = "update"
	opComplete    = "complete"
	opCancel      = "cancel"
	opFail        = "fail"
	opDelete      = "delete"
	opAddFile     = "add file to"
	opRemoveFile  = "remove file from"
	opValidate    = "validate"
	opTransfer    = "transfer data in"
	opPull        = "pull data into"
	opCommit      = "commit the pending complete of"
	opPrepare     = "prepare file of"
	opExpire      = "expire"
	opItemDeleted = "delete the item of"
)

// transition is one row of a state machine: the states an operation is
// allowed from, and the state it leads to ("" = unchanged).
type transition struct {
	from []State
	to   State
}

var active = []State{StateActive}
var activeOrCompleting = []State{StateActive, stateCompleting}
var terminal = []State{StateDone, StateFailed, StateCanceled}
var anyState = []State{StateActive, StateDone, StateFailed, StateCanceled}

// updateTransitions is the update-session state machine of spec §6.3, with
// the recommendations of §12 (#4 expiry cancels, #15 add needs ACTIVE, #21
// an item deleted under a session puts it in ERROR).
//
// A complete that finds pulls still running leaves the session ACTIVE but
// completing: pulls go on (opPull) and the last one to end commits it
// (opCommit); changes and a second complete are refused; cancel, fail,
// expiry and keep_alive work as on any ACTIVE session.
var updateTransitions = map[string]transition{
	opKeepAlive:   {from: activeOrCompleting},
	opUpdate:      {from: active},
	opAddFile:     {from: active},
	opRemoveFile:  {from: active},
	opValidate:    {from: activeOrCompleting},
	opTransfer:    {from: active},
	opPull:        {from: activeOrCompleting},
	opComplete:    {from: active, to: StateDone},
	opCommit:      {from: []State{stateCompleting}, to: StateDone},
	opCancel:      {from: activeOrCompleting, to: StateCanceled},
	opFail:        {from: activeOrCompleting, to: StateFailed},
	opExpire:      {from: activeOrCompleting, to: StateCanceled},
	opItemDeleted: {from: activeOrCompleting, to: StateFailed},
	opDelete:      {from: terminal},
}

// downloadTransitions is the download-session state machine of spec §8.2:
// no DONE state, and delete is allowed in any state.
var downloadTransitions = map[string]transition{
	opKeepAlive:   {from: active},
	opPrepare:     {from: active},
	opTransfer:    {from: active},
	opCancel:      {from: active, to: StateCanceled},
	opFail:        {from: active, to: StateFailed},
	opExpire:      {from: active, to: StateCanceled},
	opItemDeleted: {from: active, to: StateFailed},
	opDelete:      {from: anyState},
}

// next returns the state op leads to from cur, or a *StateError.
func next(table map[string]transition, session string, cur State, op string) (State, error) {
	t, ok := table[op]
	if !ok {
		return cur, &StateError{Session: session, Op: op, State: cur}
	}
	for _, s := range t.from {
		if s == cur {
			if t.to == "" {
				return cur, nil
			}
			return t.to, nil
		}
	}
	return cur, &StateError{Session: session, Op: op, State: cur}
}

// checkUpdate refuses op on an update session whose state the update
// state machine does not allow it from, with a *StateError.
func checkUpdate(s *meta.UpdateSession, op string) error {
	_, err := updateTransition(s, op)
	return err
}

// updateTransition is the state op moves an update session to, or the
// *StateError that refuses it.
func updateTransition(s *meta.UpdateSession, op string) (State, error) {
	return next(updateTransitions, updateLabel(s.UUID), updateState(s), op)
}

// checkDownload is checkUpdate for download sessions.
func checkDownload(s *meta.DownloadSession, op string) error {
	_, err := downloadTransition(s, op)
	return err
}

// downloadTransition is updateTransition for download sessions.
func downloadTransition(s *meta.DownloadSession, op string) (State, error) {
	return next(downloadTransitions, downloadLabel(s.UUID), State(s.State), op)
}

// updateState is the state an update session's operations are checked
// against: the stored one, or stateCompleting while a complete waits for
// pulls.
func updateState(s *meta.UpdateSession) State {
	if State(s.State) == StateActive && s.CompletePending {
		return stateCompleting
	}
	return State(s.State)
}
