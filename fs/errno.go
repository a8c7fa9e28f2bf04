package fs

import (
	"context"
	"errors"
	"log/slog"
	"syscall"

	"clfs/sessionmgr"
)

// kindErrno maps every API error kind to the errno a POSIX caller gets.
var kindErrno = map[sessionmgr.Kind]syscall.Errno{
	sessionmgr.KindNotFound:                 syscall.ENOENT,
	sessionmgr.KindInvalidArgument:          syscall.EINVAL,
	sessionmgr.KindNotAllowedInCurrentState: syscall.EIO,
	sessionmgr.KindAlreadyExists:            syscall.EEXIST,
	sessionmgr.KindResourceBusy:             syscall.EBUSY,
	sessionmgr.KindInvalidElementType:       syscall.EPERM,
	sessionmgr.KindResourceInaccessible:     syscall.EIO,
	sessionmgr.KindConcurrentChange:         syscall.EAGAIN,
	sessionmgr.KindUnsupported:              syscall.ENOTSUP,
	sessionmgr.KindUnauthenticated:          syscall.EACCES,
	sessionmgr.KindUnauthorized:             syscall.EACCES,
	sessionmgr.KindError:                    syscall.EIO,
}

// causeErrno refines the mapping for causes a caller must tell apart.
var causeErrno = []struct {
	cause error
	errno syscall.Errno
}{
	{sessionmgr.ErrNoSpace, syscall.ENOSPC},
	{sessionmgr.ErrReadOnly, syscall.EROFS},
	{sessionmgr.ErrNotEmpty, syscall.ENOTEMPTY},
	{sessionmgr.ErrNameTooLong, syscall.ENAMETOOLONG},
	{sessionmgr.ErrChecksumMismatch, syscall.EIO},
	{sessionmgr.ErrSizeMismatch, syscall.EIO},
	{sessionmgr.ErrContentCorrupt, syscall.EIO},
}

// errnoOf maps a sessionmgr error to an errno.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	for _, c := range causeErrno {
		if errors.Is(err, c.cause) {
			return c.errno
		}
	}
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	return kindErrno[sessionmgr.KindOf(err)]
}

// toErrno maps err and logs the rejection: one line per failed operation.
func (fsys *FS) toErrno(op, path string, err error) syscall.Errno {
	errno := errnoOf(err)
	if errno != 0 {
		level := slog.LevelInfo
		if errno == syscall.EIO || errno == syscall.ENOSPC {
			level = slog.LevelError
		}
		if errno != syscall.ENOENT || op != "lookup" {
			fsys.log.Log(context.Background(), level, "rejected", "op", op, "path", path, "errno", errno.Error(), "reason", err.Error())
		}
	}
	return errno
}

// reject logs a rejection decided here (not by sessionmgr).
func (fsys *FS) reject(op, path string, errno syscall.Errno, reason string) syscall.Errno {
	fsys.log.Info("rejected", "op", op, "path", path, "errno", errno.Error(), "reason", reason)
	return errno
}
