package sessionmgr

import (
	"strings"
	"unicode/utf8"
)

// MaxNameBytes is the longest name of a library, item or file: NAME_MAX.
const MaxNameBytes = 255

const (
	maxNameBytes        = MaxNameBytes
	maxItemNameChars    = 80
	maxDescriptionChars = 2000
)

// ValidateName checks a library, item or file name: it must be usable as
// one path component of the mount and survive the API's JSON unchanged.
// Non-UTF-8 names are refused because JSON cannot carry them losslessly;
// '\' because clients on Windows and datastore paths read it as a
// separator (spec §12 #23).
func ValidateName(what, name string) error {
	switch {
	case name == "":
		return errorf(KindInvalidArgument, "%s name is empty", what)
	case name == "." || name == "..":
		return errorf(KindInvalidArgument, "%s name %q is reserved", what, name)
	case strings.ContainsRune(name, '/'):
		return errorf(KindInvalidArgument, "%s name %q contains '/'", what, name)
	case strings.ContainsRune(name, 0):
		return errorf(KindInvalidArgument, "%s name %q contains NUL", what, name)
	case len(name) > maxNameBytes:
		return wrapf(KindInvalidArgument, ErrNameTooLong, "%s name is %d bytes long, the limit is %d", what, len(name), maxNameBytes)
	case !utf8.ValidString(name):
		return errorf(KindInvalidArgument, "%s name %q is not valid UTF-8", what, name)
	}
	return nil
}

func validateItemName(name string) error {
	if err := ValidateName("item", name); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(name); n > maxItemNameChars {
		return wrapf(KindInvalidArgument, ErrNameTooLong, "item name %q is %d characters long, the limit is %d", name, n, maxItemNameChars)
	}
	return nil
}

func validateDescription(d string) error {
	if n := utf8.RuneCountInString(d); n > maxDescriptionChars {
		return errorf(KindInvalidArgument, "description is %d characters long, the limit is %d", n, maxDescriptionChars)
	}
	return nil
}
