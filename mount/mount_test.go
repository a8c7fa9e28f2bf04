package mount

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// mounted starts a real mount of a fresh home for one test.
func mounted(t *testing.T) (mnt string, mt *Mount) {
	t.Helper()
	tm := newMount(t)
	return tm.Dir, tm.Mount
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func TestCopyInAndOut(t *testing.T) {
	mnt, _ := mounted(t)
	if err := os.MkdirAll(filepath.Join(mnt, "lib", "item"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "disk.vmdk")
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	os.WriteFile(src, data, 0o640)
	run(t, "cp", src, filepath.Join(mnt, "lib", "item"))
	got, err := os.ReadFile(filepath.Join(mnt, "lib", "item", "disk.vmdk"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v (len %d)", err, len(got))
	}
	t.Log(run(t, "ls", "-lRi", mnt))
}
