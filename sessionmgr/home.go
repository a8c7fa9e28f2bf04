package sessionmgr

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// metaURLFile is where a home remembers the URL of its catalog, so that a
// home on etcd opens as one on Badger does: `clfs mount DIR` with the
// home alone. It may hold credentials: mode 0600.
const metaURLFile = "meta.url"

// catalogURL picks the catalog of a home: the URL given (remembered for
// the next open, unless read-only), else the one remembered, else Badger
// in HOME/meta, created if needed (a home of an earlier release has no
// meta.url, and opens unchanged).
func catalogURL(home, given string, readOnly bool) (string, error) {
	path := filepath.Join(home, metaURLFile)
	given = strings.TrimSpace(given)
	if given != "" {
		if !readOnly {
			old, err := os.ReadFile(path)
			if err != nil || strings.TrimSpace(string(old)) != given {
				// writeFileAtomic creates it mode 0600 (os.CreateTemp).
				if err := writeFileAtomic(path, []byte(given+"\n")); err != nil {
					return "", fmt.Errorf("remember catalog URL in %s: %w", path, err)
				}
			}
		}
		return given, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil && strings.TrimSpace(string(b)) != "":
		return strings.TrimSpace(string(b)), nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("catalog URL: %w", err)
	}
	dir := filepath.Join(home, "meta")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create home %s: %w", home, err)
	}
	return "badger://" + dir, nil
}
