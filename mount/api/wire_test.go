package api

import (
	"errors"
	"strings"
	"testing"

	"clfs/sessionmgr"
)

func TestKindWireIsTotal(t *testing.T) {
	// spec §0.2
	want := map[sessionmgr.Kind]int{
		sessionmgr.KindNotFound: 404, sessionmgr.KindUnauthenticated: 401,
		sessionmgr.KindUnauthorized: 403, sessionmgr.KindError: 500,
	}
	for _, k := range sessionmgr.Kinds {
		w, ok := kindWire[k]
		if !ok {
			t.Errorf("kind %s has no HTTP status and error type", k)
			continue
		}
		status := 400
		if s, ok := want[k]; ok {
			status = s
		}
		if w.Status != status {
			t.Errorf("kind %s: HTTP %d, want %d", k, w.Status, status)
		}
		if !strings.HasPrefix(w.Type, "com.vmware.vapi.std.errors.") || strings.ToLower(w.Type) != w.Type {
			t.Errorf("kind %s: type %q", k, w.Type)
		}
		if got := kindOfType(w.Type); got != k {
			t.Errorf("type %s maps back to %s, want %s", w.Type, got, k)
		}
		// Through the wire and back, kind and text are kept.
		err := &sessionmgr.Error{Kind: k, Msg: "some message"}
		status, body := EncodeError(err)
		back := decodeError(body)
		if status != w.Status || sessionmgr.KindOf(back) != k || back.Error() != err.Error() {
			t.Errorf("kind %s: round trip gave HTTP %d, %v", k, status, back)
		}
	}
	if len(kindWire) != len(sessionmgr.Kinds) {
		t.Errorf("kindWire has %d kinds, sessionmgr.Kinds %d", len(kindWire), len(sessionmgr.Kinds))
	}
}

func TestErrorRoundTrip(t *testing.T) {
	for _, err := range []error{
		&sessionmgr.StateError{Session: "update session x", Op: "cancel", State: sessionmgr.StateDone},
		&sessionmgr.Error{Kind: sessionmgr.KindInvalidArgument, Msg: "file \"a\": checksum", Err: sessionmgr.ErrChecksumMismatch},
		errors.New("open /x: permission denied"),
		errors.Join(errors.New("commit"), &sessionmgr.Error{Kind: sessionmgr.KindNotFound, Msg: "item x not found"}),
	} {
		_, body := EncodeError(err)
		back := decodeError(body)
		if back.Error() != err.Error() || sessionmgr.KindOf(back) != sessionmgr.KindOf(err) {
			t.Errorf("%q came back as %q (kind %s, want %s)", err, back, sessionmgr.KindOf(back), sessionmgr.KindOf(err))
		}
		var e *sessionmgr.Error
		if !errors.As(back, &e) {
			t.Errorf("%q: not a *sessionmgr.Error", back)
		}
		if errors.Is(err, sessionmgr.ErrChecksumMismatch) != errors.Is(back, sessionmgr.ErrChecksumMismatch) {
			t.Errorf("%q: cause lost", err)
		}
	}
}
