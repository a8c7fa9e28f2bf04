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

// catalogURL picks the catalog of a home: the URL given, else the one
// remembered, else Badger in HOME/meta, created if needed (a home of an
// earlier release has no meta.url, and opens unchanged).
func catalogURL(home, given string) (string, error) {
	if given = strings.TrimSpace(given); given != "" {
		return given, nil
	}
	b, err := os.ReadFile(filepath.Join(home, metaURLFile))
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

// rememberCatalogURL makes url the home's catalog for the next open that
// names none; called once the catalog opened, so a wrong URL is not
// remembered.
func rememberCatalogURL(home, url string) error {
	path := filepath.Join(home, metaURLFile)
	if old, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(old)) == url {
		return nil
	}
	// writeFileAtomic creates it mode 0600 (os.CreateTemp).
	if err := writeFileAtomic(path, []byte(url+"\n")); err != nil {
		return fmt.Errorf("remember catalog URL in %s: %w", path, err)
	}
	return nil
}
