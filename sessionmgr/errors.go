package sessionmgr

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"clfs/meta"
)

// Kind is an error kind of the vSphere API (com.vmware.vapi.std.errors.*).
// Front ends map kinds to their own vocabulary: the mount to errno, the
// control socket and REST server to HTTP status and error type.
type Kind string

const (
	KindNotFound                 Kind = "NotFound"
	KindInvalidArgument          Kind = "InvalidArgument"
	KindNotAllowedInCurrentState Kind = "NotAllowedInCurrentState"
	KindAlreadyExists            Kind = "AlreadyExists"
	KindResourceBusy             Kind = "ResourceBusy"
	KindInvalidElementType       Kind = "InvalidElementType"
	KindResourceInaccessible     Kind = "ResourceInaccessible"
	KindConcurrentChange         Kind = "ConcurrentChange"
	KindUnsupported              Kind = "Unsupported"
	KindUnauthenticated          Kind = "Unauthenticated"
	KindUnauthorized             Kind = "Unauthorized"
	KindError                    Kind = "Error"
)

// Kinds lists every kind, for front ends whose mapping tables must be total.
var Kinds = []Kind{
	KindNotFound, KindInvalidArgument, KindNotAllowedInCurrentState, KindAlreadyExists,
	KindResourceBusy, KindInvalidElementType, KindResourceInaccessible, KindConcurrentChange,
	KindUnsupported, KindUnauthenticated, KindUnauthorized, KindError,
}

// Error is an API error: a kind and a message that names the object.
// errors.Is(err, ErrNotFound) and friends match on the kind alone.
type Error struct {
	Kind Kind
	Msg  string
	Err  error // cause, if any
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return string(e.Kind)
	}
	return string(e.Kind) + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches a bare sentinel of the same kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Msg == "" && t.Err == nil && t.Kind == e.Kind
}

// Sentinels, one per kind, for errors.Is.
var (
	ErrNotFound                 = &Error{Kind: KindNotFound}
	ErrInvalidArgument          = &Error{Kind: KindInvalidArgument}
	ErrNotAllowedInCurrentState = &Error{Kind: KindNotAllowedInCurrentState}
	ErrAlreadyExists            = &Error{Kind: KindAlreadyExists}
	ErrResourceBusy             = &Error{Kind: KindResourceBusy}
	ErrInvalidElementType       = &Error{Kind: KindInvalidElementType}
	ErrResourceInaccessible     = &Error{Kind: KindResourceInaccessible}
	ErrConcurrentChange         = &Error{Kind: KindConcurrentChange}
	ErrUnsupported              = &Error{Kind: KindUnsupported}
)

// Causes carried inside API errors, for callers that need to tell them
// apart (the mount returns ENOSPC and EIO from close for these).
var (
	ErrChecksumMismatch = errors.New("checksum mismatch")
	ErrSizeMismatch     = errors.New("size mismatch")
	ErrNoSpace          = errors.New("no space left on the storage backing")
	ErrContentCorrupt   = errors.New("stored content does not match its checksum")
	// ErrReadOnly is the cause of a change refused by a manager opened
	// with Options.ReadOnly (KindUnauthorized).
	ErrReadOnly = errors.New("the home is served read-only")
	// ErrNotEmpty is the cause of refusing to delete a library or item
	// that still has content, as rmdir(2) must.
	ErrNotEmpty = errors.New("not empty")
	// ErrNameTooLong is the cause of refusing a name over MaxNameBytes.
	ErrNameTooLong = errors.New("name too long")
)

func errorf(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// wrapf makes an API error of kind with cause err kept for errors.Is.
func wrapf(kind Kind, err error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Err: err}
}

// KindOf returns the API kind of err; anything that is not an API error is
// KindError (the generic server error).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	var se *StateError
	if errors.As(err, &se) {
		return KindNotAllowedInCurrentState
	}
	return KindError
}

// StateError is an operation refused because of a session's state.
type StateError struct {
	Session string // "update session <id>" or "download session <id>"
	Op      string
	State   State
}

func (e *StateError) Error() string {
	return fmt.Sprintf("%s: cannot %s %s in state %s", KindNotAllowedInCurrentState, e.Op, e.Session, e.State)
}

func (e *StateError) Is(target error) bool { return target == ErrNotAllowedInCurrentState }

// fromMeta is where the catalog's errors become the API's: every
// transaction's error passes through it on its way out (see catalog).
// A transaction that kept conflicting with others is ConcurrentChange,
// the API's name for a change that raced another; a record that was not
// there is NotFound. The meta sentinel stays the cause, for errors.Is.
// Errors that are the API's already pass unchanged, and so does anything
// else (a corrupt record, a failing disk): a server error.
//
// A lookup whose absence the API describes in its own words (a library by
// id, a file by name) says so inside the transaction, with notFoundAs.
func fromMeta(err error) error {
	var api *Error
	var state *StateError
	switch {
	case err == nil, errors.As(err, &api), errors.As(err, &state):
		return err
	case errors.Is(err, meta.ErrConflict):
		return wrapf(KindConcurrentChange, err, "%v", err)
	case errors.Is(err, meta.ErrNotFound):
		return wrapf(KindNotFound, err, "%v", err)
	}
	return err
}

// notFoundAs is a catalog lookup's error as the API reports it: a record
// that is not there becomes the API error of kind, with the message that
// names what the caller asked for; any other error is left to fromMeta.
func notFoundAs(err error, kind Kind, format string, args ...any) error {
	if errors.Is(err, meta.ErrNotFound) {
		return errorf(kind, format, args...)
	}
	return err
}

// serverSide reports whether err is a failure of the server, its storage
// or its catalog, rather than the API refusing the call: a commit that
// fails so puts its session in ERROR.
func serverSide(err error) bool {
	return KindOf(err) == KindError || errors.Is(err, meta.ErrConflict) || errors.Is(err, meta.ErrNotFound)
}

// callerGone reports whether err is ctx's end: the caller hung up or was
// interrupted, which is no failure of the server.
func callerGone(ctx context.Context, err error) bool {
	return ctx.Err() != nil && errors.Is(err, ctx.Err())
}

// storageErr classifies an I/O error on the storage backing: a full disk
// keeps its identity so the mount can report ENOSPC.
func storageErr(op string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%s: %w: %w", op, ErrNoSpace, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// messageOf is an error's text without its kind, for error_message fields
// whose kind the state already says.
func messageOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Msg != "" {
		return e.Msg
	}
	return err.Error()
}
