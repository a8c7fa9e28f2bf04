package mount

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A mountpoint that cannot be used gets one line that says what to do.
func TestCheckMountpoint(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	full := filepath.Join(dir, "full")
	os.MkdirAll(filepath.Join(full, "x"), 0o755)
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing"), "mkdir -p"},
		{file, "not a directory"},
		{full, "not empty"},
	} {
		err := CheckMountpoint(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("CheckMountpoint(%s) = %v, want one line containing %q", tc.path, err, tc.want)
		}
	}
	if err := CheckMountpoint(empty); err != nil {
		t.Errorf("an empty directory is refused: %v", err)
	}
}
