package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestKill9AfterNamespaceBurstKeepsEveryChange is the crash test of issue
// #13's rule 2: namespace changes (rename, rename over a name, unlink,
// mkdir, rmdir, chmod, utimens) are not each synced, but every one that
// returned survives a kill -9 of the daemon right after the last of them,
// in order: the final state is one that only the changes applied in the
// order they were made produce. The restarted home is clean (fsck, no
// unreferenced blob, every committed blob on disk): blobs freed by the
// burst were deleted after their change was synced, or swept at restart.
func TestKill9AfterNamespaceBurstKeepsEveryChange(t *testing.T) {
	bin := buildClfs(t)
	home, mnt := t.TempDir(), filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	d := startDaemon(t, bin, home, mnt)
	lib := filepath.Join(mnt, "lib")
	item := filepath.Join(lib, "item")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(item, 0o755))
	// Content, committed (and synced) at close before the burst: some
	// files large enough to be blob files, so that unlinks and renames
	// over names free blobs.
	content := func(name string) []byte {
		n := 100 << 10 // above the inline limit
		if len(name)%2 == 0 {
			n = 3000
		}
		return bytes.Repeat([]byte(name+"."), n/(len(name)+1))
	}
	const chain, unlinks = 60, 20
	names := []string{"chain-0", "over-src", "over-dst", "doomed", "moved", "modes"}
	for i := range unlinks {
		names = append(names, fmt.Sprintf("gone-%d", i))
	}
	for _, n := range names {
		must(os.WriteFile(filepath.Join(item, n), content(n), 0o644))
	}

	// The burst: no content is committed from here on, so nothing but
	// the syncer (every half second) syncs the catalog.
	start := time.Now()
	for i := range chain { // chain-0 → chain-1 → ... → chain-60
		must(os.Rename(filepath.Join(item, fmt.Sprintf("chain-%d", i)), filepath.Join(item, fmt.Sprintf("chain-%d", i+1))))
	}
	must(os.Rename(filepath.Join(item, "over-src"), filepath.Join(item, "over-dst"))) // frees over-dst's blob
	for i := range unlinks {
		must(os.Remove(filepath.Join(item, fmt.Sprintf("gone-%d", i))))
	}
	// Order matters: unlink doomed, then take its name; swapped, the
	// name would be gone.
	must(os.Remove(filepath.Join(item, "doomed")))
	must(os.Rename(filepath.Join(item, "moved"), filepath.Join(item, "doomed")))
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	must(os.Chmod(filepath.Join(item, "modes"), 0o600))
	must(os.Chtimes(filepath.Join(item, "modes"), mtime, mtime))
	must(os.Chmod(filepath.Join(item, "modes"), 0o640)) // the later chmod wins
	for i := range 10 {                                 // mkdir, rename, rmdir of items and libraries
		must(os.Mkdir(filepath.Join(lib, fmt.Sprintf("tmp-%d", i)), 0o755))
		must(os.Rename(filepath.Join(lib, fmt.Sprintf("tmp-%d", i)), filepath.Join(lib, fmt.Sprintf("kept-%d", i))))
		if i%2 == 0 {
			must(os.Remove(filepath.Join(lib, fmt.Sprintf("kept-%d", i))))
		}
	}
	must(os.Mkdir(filepath.Join(mnt, "lib2"), 0o755))
	must(os.Rename(filepath.Join(mnt, "lib2"), filepath.Join(mnt, "lib3")))
	must(os.Mkdir(filepath.Join(mnt, "lib4"), 0o755))
	must(os.Remove(filepath.Join(mnt, "lib4")))
	t.Logf("burst of %d changes in %v", chain+1+unlinks+2+3+10*2+5+4, time.Since(start))
	d.kill9(t, bin, mnt, false)

	d = startDaemon(t, bin, home, mnt)
	defer d.stop(t)
	checkRestartedHome(t, home, "after the burst")
	ents, err := os.ReadDir(item)
	must(err)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := []string{fmt.Sprintf("chain-%d", chain), "doomed", "modes", "over-dst"}
	if !slices.Equal(got, want) {
		t.Fatalf("item after kill -9: %v, want %v", got, want)
	}
	for name, from := range map[string]string{"chain-60": "chain-0", "over-dst": "over-src", "doomed": "moved", "modes": "modes"} {
		b, err := os.ReadFile(filepath.Join(item, name))
		if err != nil || !bytes.Equal(b, content(from)) {
			t.Errorf("%s after kill -9: %v, %d bytes; want the content of %s", name, err, len(b), from)
		}
	}
	st, err := os.Stat(filepath.Join(item, "modes"))
	must(err)
	if st.Mode().Perm() != 0o640 || !st.ModTime().Equal(mtime) {
		t.Errorf("modes after kill -9: %v %v, want 0640 %v", st.Mode().Perm(), st.ModTime(), mtime)
	}
	ents, err = os.ReadDir(lib)
	must(err)
	got = nil
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want = []string{"item", "kept-1", "kept-3", "kept-5", "kept-7", "kept-9"}
	if !slices.Equal(got, want) {
		t.Errorf("library after kill -9: %v, want %v", got, want)
	}
	ents, err = os.ReadDir(mnt)
	must(err)
	got = nil
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if want := []string{"lib", "lib3"}; !slices.Equal(got, want) {
		t.Errorf("root after kill -9: %v, want %v", got, want)
	}
}
