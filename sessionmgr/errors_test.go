package sessionmgr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"clfs/meta"
)

// The catalog's errors leave every transaction in the API's terms.
func TestFromMeta(t *testing.T) {
	api := errorf(KindAlreadyExists, "library %q already exists", "lib")
	state := &StateError{Session: "update session x", Op: opComplete, State: StateDone}
	disk := errors.New("input/output error")
	for _, tc := range []struct {
		err   error
		kind  Kind
		cause error // still found by errors.Is
	}{
		{meta.ErrConflict, KindConcurrentChange, meta.ErrConflict},
		{fmt.Errorf("storage backing 3: %w", meta.ErrNotFound), KindNotFound, meta.ErrNotFound},
		{meta.ErrCorrupt, KindError, meta.ErrCorrupt},
		// A change beyond the engine's bounds is the server's failure.
		{fmt.Errorf("%w: 200 keys", meta.ErrTooLarge), KindError, meta.ErrTooLarge},
		{disk, KindError, disk},
		{api, KindAlreadyExists, api},
		{state, KindNotAllowedInCurrentState, state},
	} {
		got := fromMeta(tc.err)
		if k := KindOf(got); k != tc.kind {
			t.Errorf("fromMeta(%v) is %s (%v), want %s", tc.err, k, got, tc.kind)
		}
		if !errors.Is(got, tc.cause) {
			t.Errorf("fromMeta(%v) = %v lost its cause", tc.err, got)
		}
	}
	if got := fromMeta(api); got != api {
		t.Errorf("an API error changed on its way out: %v", got)
	}
	if fromMeta(nil) != nil {
		t.Error("fromMeta(nil) != nil")
	}
	if got := notFoundAs(fmt.Errorf("x: %w", meta.ErrNotFound), KindInvalidArgument, "file %q is not in %s", "a", "s"); KindOf(got) != KindInvalidArgument || got.Error() != `InvalidArgument: file "a" is not in s` {
		t.Errorf("notFoundAs = %v", got)
	}
	if got := notFoundAs(disk, KindNotFound, "x"); got != disk {
		t.Errorf("notFoundAs changed another error: %v", got)
	}
}

// A transaction that loses every round to another writer of the record it
// read gives up with meta.ErrConflict, which reaches the caller as the
// API's ConcurrentChange (HTTP 409 concurrent_change, EAGAIN), not as a
// server error.
func TestConflictIsConcurrentChange(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	lib := e.library("lib")
	rounds := 0
	err := e.m.store.UpdateBuffered(e.ctx, func(tx *meta.Tx) error {
		rounds++
		l, err := e.m.libraryRec(tx, lib)
		if err != nil {
			return err
		}
		// Another transaction changes the record this one read and
		// commits first, in every round.
		if err := e.m.store.Store.UpdateBuffered(context.Background(), func(other *meta.Tx) error {
			o, err := other.Library(l.ID)
			if err != nil {
				return err
			}
			o.Description += "x"
			return other.PutLibrary(o)
		}); err != nil {
			return err
		}
		l.Description = "mine"
		return tx.PutLibrary(l)
	})
	wantKind(t, err, KindConcurrentChange)
	if !errors.Is(err, meta.ErrConflict) {
		t.Errorf("%v: the cause is not meta.ErrConflict", err)
	}
	if rounds < 2 {
		t.Errorf("the transaction ran %d times: it was not retried", rounds)
	}
	got, err := e.m.GetLibrary(e.ctx, lib)
	e.must(err)
	if got.Description == "mine" {
		t.Error("the conflicting transaction was committed")
	}
}
