package meta

import "errors"

var (
	// ErrNotFound: no record under that key.
	ErrNotFound = errors.New("meta: not found")
	// ErrCorrupt: a stored value could not be decoded.
	ErrCorrupt = errors.New("meta: corrupt record")
	// ErrConflict: a transaction kept conflicting after bounded retries.
	ErrConflict = errors.New("meta: transaction conflict after retries")
)
