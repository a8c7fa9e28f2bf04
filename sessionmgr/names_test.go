package sessionmgr

import (
	"strings"
	"testing"
)

// Name rules (spec §12 #23) for every kind of name, through the calls
// that take one. Quoted names that need no table are in
// testdata/transcripts/names.txt.
func TestNameValidation(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	lib := e.library("lib")
	item := e.item(lib, "iso")
	s := e.updateSession(item)

	cases := []struct {
		name        string
		okLibrary   bool
		okItem      bool
		okFile      bool
		description string
	}{
		{"", false, false, false, "empty"},
		{".", false, false, false, "dot"},
		{"..", false, false, false, "dot-dot"},
		{"a/b", false, false, false, "slash"},
		{"/", false, false, false, "only slash"},
		// The issue and ARCHITECTURE.md name the rules; a backslash is an
		// ordinary character in POSIX names that rsync must carry over.
		{`a\b`, true, true, true, "backslash"},
		{"a\x00b", false, false, false, "NUL"},
		{"\xff\xfe", false, false, false, "not UTF-8"},
		{"ok\xc3", false, false, false, "truncated UTF-8"},
		{"...", true, true, true, "three dots"},
		{".hidden", true, true, true, "leading dot"},
		{"with space", true, true, true, "space"},
		{strings.Repeat("x", 80), true, true, true, "80 bytes"},
		{strings.Repeat("x", 81), true, false, true, "81 bytes"},
		{strings.Repeat("é", 80), true, true, true, "80 two-byte characters"},
		{strings.Repeat("é", 81), true, false, true, "81 two-byte characters"},
		{strings.Repeat("x", 255), true, false, true, "255 bytes"},
		{strings.Repeat("x", 256), false, false, false, "256 bytes"},
		{strings.Repeat("é", 128), false, false, false, "128 two-byte characters = 256 bytes"},
	}
	for _, c := range cases {
		t.Run(c.description, func(t *testing.T) {
			want := func(ok bool) Kind {
				if ok {
					return ""
				}
				return KindInvalidArgument
			}
			// Every case's name is distinct, so each create is a new name.
			_, err := e.m.CreateLibrary(e.ctx, LibraryCreateSpec{Name: c.name}, "")
			wantKind(t, err, want(c.okLibrary))
			_, err = e.m.CreateItem(e.ctx, ItemCreateSpec{LibraryID: lib, Name: c.name}, "")
			wantKind(t, err, want(c.okItem))
			if c.okItem {
				// A rename applies the same rules.
				other := e.item(lib, "rename-me")
				n := c.name
				e.t = t
				wantKind(t, e.m.UpdateItem(e.ctx, other, ItemUpdateSpec{Name: &n}), KindAlreadyExists)
				e.must(e.m.DeleteItem(e.ctx, other))
			}
			_, err = e.m.AddFile(e.ctx, s, FileAddSpec{Name: c.name, SourceType: SourcePush})
			wantKind(t, err, want(c.okFile))
		})
	}
	e.t = t
	// Renames are checked like creates.
	bad := strings.Repeat("y", 81)
	wantKind(t, e.m.UpdateItem(e.ctx, item, ItemUpdateSpec{Name: &bad}), KindInvalidArgument)
	badLib := "a/b"
	wantKind(t, e.m.UpdateLibrary(e.ctx, lib, LibraryUpdateSpec{Name: &badLib}), KindInvalidArgument)
}
