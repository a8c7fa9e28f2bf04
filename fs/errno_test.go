package fs

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"clfs/sessionmgr"
)

// Every API error kind has an errno; a new kind without one fails here.
func TestEveryKindHasAnErrno(t *testing.T) {
	for _, k := range sessionmgr.Kinds {
		if _, ok := kindErrno[k]; !ok {
			t.Errorf("kind %s has no errno", k)
		}
	}
}

func TestErrnoOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{sessionmgr.ErrNotFound, syscall.ENOENT},
		{fmt.Errorf("wrapped: %w", sessionmgr.ErrResourceBusy), syscall.EBUSY},
		{&sessionmgr.Error{Kind: sessionmgr.KindAlreadyExists, Msg: "x"}, syscall.EEXIST},
		{&sessionmgr.Error{Kind: sessionmgr.KindError, Msg: "commit", Err: sessionmgr.ErrNoSpace}, syscall.ENOSPC},
		{&sessionmgr.Error{Kind: sessionmgr.KindNotAllowedInCurrentState, Msg: "rmdir", Err: sessionmgr.ErrNotEmpty}, syscall.ENOTEMPTY},
		{&sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: "long", Err: sessionmgr.ErrNameTooLong}, syscall.ENAMETOOLONG},
		{&sessionmgr.Error{Kind: sessionmgr.KindUnauthorized, Msg: "cannot create file", Err: sessionmgr.ErrReadOnly}, syscall.EROFS},
		{&sessionmgr.Error{Kind: sessionmgr.KindUnauthorized, Msg: "not yours"}, syscall.EACCES},
		{&sessionmgr.StateError{Session: "s", Op: "read", State: sessionmgr.StateCanceled}, syscall.EIO},
		{errors.New("anything else"), syscall.EIO},
		{context.Canceled, syscall.EINTR},
		{fmt.Errorf("io: %w", syscall.EROFS), syscall.EROFS},
	} {
		if got := errnoOf(tc.err); got != tc.want {
			t.Errorf("errnoOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
