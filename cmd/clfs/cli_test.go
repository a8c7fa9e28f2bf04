package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"clfs/sessionmgr"
)

// The tests drive the command line as a user would, through run (what
// Main calls), against a real catalog in a temporary home.

type cliEnv struct {
	t    *testing.T
	home string
}

func newCLI(t *testing.T) *cliEnv {
	t.Helper()
	return &cliEnv{t: t, home: filepath.Join(t.TempDir(), "home")}
}

// run runs clfs --home HOME args... and returns its stdout.
func (e *cliEnv) run(args ...string) (string, error) {
	return e.runRaw(append([]string{"--home", e.home}, args...)...)
}

// runRaw runs clfs args... as given.
func (e *cliEnv) runRaw(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"clfs"}, args...), &stdout, &stderr)
	if stderr.Len() > 0 {
		e.t.Logf("clfs %s: stderr: %s", strings.Join(args, " "), stderr.String())
	}
	return stdout.String(), err
}

func (e *cliEnv) must(args ...string) string {
	e.t.Helper()
	out, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("clfs %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (e *cliEnv) mustFail(args ...string) error {
	e.t.Helper()
	out, err := e.run(args...)
	if err == nil {
		e.t.Fatalf("clfs %s succeeded, want an error; stdout:\n%s", strings.Join(args, " "), out)
	}
	if strings.Contains(err.Error(), "\n") {
		e.t.Errorf("clfs %s: error is not one line: %q", strings.Join(args, " "), err)
	}
	return err
}

// json runs a --json command and decodes its output into v.
func (e *cliEnv) json(v any, args ...string) {
	e.t.Helper()
	out := e.must(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		e.t.Fatalf("clfs %s: bad JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (e *cliEnv) files(item string) []sessionmgr.File {
	var files []sessionmgr.File
	e.json(&files, "file", "ls", item, "--json")
	return files
}

func (e *cliEnv) item(item string) sessionmgr.Item {
	var it sessionmgr.Item
	e.json(&it, "item", "info", item, "--json")
	return it
}

// withManager opens the home with the API directly, as another client
// would. Badger allows one process at a time, so it is closed before the
// CLI runs again.
func (e *cliEnv) withManager(fn func(ctx context.Context, m *sessionmgr.Manager)) {
	e.t.Helper()
	m, err := sessionmgr.Open(sessionmgr.Options{Home: e.home, ReapInterval: -1})
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() {
		if err := m.Close(); err != nil {
			e.t.Fatal(err)
		}
	}()
	fn(context.Background(), m)
}

var fixedMtime = time.Date(2024, 2, 29, 12, 34, 56, 123456789, time.UTC)

// writeFile writes a source file with a known mode and mtime.
func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fixedMtime, fixedMtime); err != nil {
		t.Fatal(err)
	}
	return path
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sha256sum is what the coreutils binary says, not our own hashing.
func sha256sum(t *testing.T, path string) string {
	t.Helper()
	bin, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Fatalf("the test compares with coreutils' sha256sum, which is missing (.ci/run installs coreutils): %v", err)
	}
	out, err := exec.Command(bin, path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

func TestImportThenFileLs(t *testing.T) {
	e := newCLI(t)
	src := t.TempDir()
	a := writeFile(t, filepath.Join(src, "disk.iso"), randomBytes(t, 3<<20+17), 0o640)
	b := writeFile(t, filepath.Join(src, "notes.txt"), []byte("hello\n"), 0o755)
	e.must("library", "create", "lib1")
	e.must("item", "import", "lib1/iso1", a, b)

	files := e.files("lib1/iso1")
	if len(files) != 2 {
		t.Fatalf("file ls: %d files, want 2: %+v", len(files), files)
	}
	want := map[string]struct {
		path string
		size int64
		mode uint32
	}{"disk.iso": {a, 3<<20 + 17, 0o640}, "notes.txt": {b, 6, 0o755}}
	for _, f := range files {
		w, ok := want[f.Name]
		if !ok {
			t.Fatalf("unexpected file %q", f.Name)
		}
		if f.Size != w.size || f.Version != "1" {
			t.Errorf("%s: size %d version %q, want %d and 1", f.Name, f.Size, f.Version, w.size)
		}
		if f.ChecksumInfo == nil || f.ChecksumInfo.Algorithm != "SHA256" || f.ChecksumInfo.Checksum != sha256sum(t, w.path) {
			t.Errorf("%s: checksum_info %+v, want SHA256 %s", f.Name, f.ChecksumInfo, sha256sum(t, w.path))
		}
		if f.Posix.Mode != w.mode || !f.Posix.Mtime.Equal(fixedMtime) {
			t.Errorf("%s: mode %o mtime %v, want %o and %v", f.Name, f.Posix.Mode, f.Posix.Mtime, w.mode, fixedMtime)
		}
	}

	// The raw JSON uses the API's field names.
	out := e.must("file", "ls", "lib1/iso1", "--json")
	for _, field := range []string{`"name"`, `"size"`, `"version"`, `"cached"`, `"checksum_info"`, `"algorithm"`, `"checksum"`} {
		if !strings.Contains(out, field) {
			t.Errorf("file ls --json lacks %s:\n%s", field, out)
		}
	}
	// The table names the files too.
	if out := e.must("file", "ls", "lib1/iso1"); !strings.Contains(out, "disk.iso") || !strings.Contains(out, sha256sum(t, a)) {
		t.Errorf("file ls table:\n%s", out)
	}
	var f sessionmgr.File
	e.json(&f, "file", "info", "lib1/iso1/notes.txt", "--json")
	if f.Name != "notes.txt" || f.Size != 6 {
		t.Errorf("file info: %+v", f)
	}
}

func TestReimportChangedFile(t *testing.T) {
	e := newCLI(t)
	p := writeFile(t, filepath.Join(t.TempDir(), "a.bin"), []byte("version one"), 0o644)
	e.must("library", "create", "lib1")
	e.must("item", "import", "lib1/item", p)
	before := e.item("lib1/item")

	writeFile(t, p, []byte("version two, longer"), 0o644)
	e.must("item", "import", "lib1/item", p)
	after := e.item("lib1/item")
	files := e.files("lib1/item")
	if len(files) != 1 || files[0].Version != "2" || files[0].Size != int64(len("version two, longer")) {
		t.Fatalf("after re-import: %+v, want one file at version 2", files)
	}
	if files[0].ChecksumInfo.Checksum != sha256sum(t, p) {
		t.Errorf("checksum %s, want %s", files[0].ChecksumInfo.Checksum, sha256sum(t, p))
	}
	if !counterLess(before.ContentVersion, after.ContentVersion) {
		t.Errorf("content_version %s -> %s, want it to go up", before.ContentVersion, after.ContentVersion)
	}
}

func counterLess(a, b string) bool {
	return len(a) < len(b) || (len(a) == len(b) && a < b)
}

func TestSameBytesAreStoredOnce(t *testing.T) {
	e := newCLI(t)
	data := randomBytes(t, 64<<10)
	p1 := writeFile(t, filepath.Join(t.TempDir(), "one.img"), data, 0o644)
	p2 := writeFile(t, filepath.Join(t.TempDir(), "two.img"), data, 0o644)
	e.must("library", "create", "lib1")
	e.must("item", "import", "lib1/a", p1)
	e.must("item", "import", "lib1/b", p2)
	var sa, sb []sessionmgr.Storage
	e.json(&sa, "storage", "ls", "lib1/a", "--json")
	e.json(&sb, "storage", "ls", "lib1/b", "--json")
	if len(sa) != 1 || len(sb) != 1 || len(sa[0].StorageURIs) != 1 {
		t.Fatalf("storage ls: %+v / %+v", sa, sb)
	}
	if !reflect.DeepEqual(sa[0].StorageURIs, sb[0].StorageURIs) {
		t.Errorf("same bytes stored at %v and %v", sa[0].StorageURIs, sb[0].StorageURIs)
	}
	if out := e.must("storage", "ls", "lib1/a"); !strings.Contains(out, sa[0].StorageURIs[0]) {
		t.Errorf("storage ls table:\n%s", out)
	}
}

func TestImportChecksums(t *testing.T) {
	e := newCLI(t)
	dir := t.TempDir()
	p := writeFile(t, filepath.Join(dir, "a.bin"), []byte("original"), 0o644)
	q := writeFile(t, filepath.Join(dir, "b.bin"), []byte("second"), 0o644)
	e.must("library", "create", "lib1")
	// Right checksums, algorithm in any case, one per file in order.
	md5q := md5.Sum([]byte("second"))
	e.must("item", "import", "lib1/item", p, q,
		"--checksum", "sha256:"+strings.ToUpper(sha256sum(t, p)),
		"--checksum", "MD5:"+hex.EncodeToString(md5q[:]))
	beforeItem, beforeFiles := e.item("lib1/item"), e.files("lib1/item")
	if beforeFiles[1].RequestedChecksum == nil || beforeFiles[1].RequestedChecksum.Algorithm != "MD5" {
		t.Errorf("requested checksum not kept: %+v", beforeFiles[1])
	}

	// A wrong checksum fails the import and changes nothing.
	writeFile(t, p, []byte("changed"), 0o644)
	wrong := strings.Repeat("0", 64)
	err := e.mustFail("item", "import", "lib1/item", p, "--checksum", "SHA256:"+wrong)
	if !strings.Contains(strings.ToLower(err.Error()), "checksum") {
		t.Errorf("error %q does not mention the checksum", err)
	}
	if !errors.Is(err, sessionmgr.ErrChecksumMismatch) {
		t.Errorf("error %v is not ErrChecksumMismatch", err)
	}
	afterItem, afterFiles := e.item("lib1/item"), e.files("lib1/item")
	if afterItem.ContentVersion != beforeItem.ContentVersion || !reflect.DeepEqual(afterFiles, beforeFiles) {
		t.Errorf("failed import changed the item:\n%+v %+v\n%+v %+v", beforeItem, beforeFiles, afterItem, afterFiles)
	}
	// Its session was failed with the reason, and the item is free again.
	var sessions []map[string]any
	e.json(&sessions, "session", "ls", "--item", "lib1/item", "--json")
	failed := 0
	for _, s := range sessions {
		if s["state"] == "ERROR" {
			failed++
		}
		if s["state"] == "ACTIVE" {
			t.Errorf("session left ACTIVE: %v", s)
		}
	}
	if failed != 1 {
		t.Errorf("%d failed sessions, want 1: %v", failed, sessions)
	}

	// A wrong checksum into a new item leaves no item behind.
	e.mustFail("item", "import", "lib1/fresh", p, "--checksum", "sha1:"+strings.Repeat("a", 40))
	if _, err := e.run("item", "info", "lib1/fresh"); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("item created by a failed import: %v", err)
	}

	// Malformed --checksum is refused before anything happens.
	for _, c := range [][]string{
		{"--checksum", "CRC32:00000000"},
		{"--checksum", "SHA256"},
		{"--checksum", "SHA256:xyz"},
		{"--checksum", "SHA256:" + wrong, "--checksum", "SHA256:" + wrong},
	} {
		args := append([]string{"item", "import", "lib1/item", p}, c...)
		err := e.mustFail(args...)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: %v is not a usage error", c, err)
		}
	}
	if got := e.item("lib1/item"); got.ContentVersion != beforeItem.ContentVersion {
		t.Errorf("content_version moved to %s", got.ContentVersion)
	}
	// No library, no item.
	if err := e.mustFail("item", "import", "nolib/item", p); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("import into a missing library: %v", err)
	}
}

func TestFsckFindsCorruption(t *testing.T) {
	e := newCLI(t)
	p := writeFile(t, filepath.Join(t.TempDir(), "disk.img"), randomBytes(t, 10000), 0o644)
	e.must("library", "create", "lib1")
	e.must("item", "import", "lib1/item", p)
	if out := e.must("fsck"); !strings.Contains(out, "0 problems") {
		t.Errorf("clean fsck:\n%s", out)
	}
	var st []sessionmgr.Storage
	e.json(&st, "storage", "ls", "lib1/item", "--json")
	u, err := url.Parse(st[0].StorageURIs[0])
	if err != nil || u.Scheme != "file" {
		t.Fatalf("storage uri %q: %v", st[0].StorageURIs[0], err)
	}
	flipByte(t, u.Path, 5000)

	out, err := e.run("fsck")
	if err == nil {
		t.Fatalf("fsck of corrupt content succeeded:\n%s", out)
	}
	if !strings.Contains(out, "lib1/item/disk.img: ") {
		t.Errorf("fsck output does not name lib1/item/disk.img:\n%s", out)
	}
	var rep sessionmgr.FsckReport
	out, err = e.run("fsck", "--json")
	if err == nil {
		t.Fatal("fsck --json succeeded")
	}
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil || len(rep.Problems) != 1 || rep.Problems[0].File != "lib1/item/disk.img" {
		t.Errorf("fsck --json: %v %+v", jerr, rep)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestFlagsBeforeAndAfterArguments(t *testing.T) {
	e := newCLI(t)
	p := writeFile(t, filepath.Join(t.TempDir(), "f"), []byte("x"), 0o644)
	e.must("library", "create", "lib1", "--description", "after")
	e.must("library", "create", "--description", "before", "lib2")
	e.must("item", "import", "lib1/item", p)
	after := e.must("file", "ls", "lib1/item", "--json")
	before := e.must("file", "ls", "--json", "lib1/item")
	if after != before || !strings.HasPrefix(after, "[") {
		t.Errorf("--json after and before differ:\n%s\n%s", after, before)
	}
	// The global flag works after the sub-command, and flag=value.
	if out, err := e.runRaw("file", "ls", "lib1/item", "--home="+e.home, "--json"); err != nil || out != after {
		t.Errorf("--home after the command: %v\n%s", err, out)
	}
	if out, err := e.runRaw("file", "--home", e.home, "ls", "--json", "lib1/item"); err != nil || out != after {
		t.Errorf("--home between commands: %v\n%s", err, out)
	}
	var l sessionmgr.Library
	e.json(&l, "library", "info", "lib1", "--json")
	if l.Description != "after" {
		t.Errorf("description %q", l.Description)
	}
	e.json(&l, "library", "info", "--json", "lib2")
	if l.Description != "before" {
		t.Errorf("description %q", l.Description)
	}
	// After --, everything is an argument, even names that look like flags.
	e.must("library", "create", "--description", "-d", "--", "-dash")
	e.json(&l, "library", "info", "--json", "--", "-dash")
	if l.Name != "-dash" || l.Description != "-d" {
		t.Errorf("library -dash: %+v", l)
	}
	if _, err := e.run("library", "info", "--", "-dash", "--json"); err == nil {
		t.Error("--json after -- was taken as a flag")
	}
	var libs []sessionmgr.Library
	e.json(&libs, "library", "ls", "--json")
	if len(libs) != 3 {
		t.Errorf("library ls: %d libraries, want 3", len(libs))
	}
}

func TestInterspersed(t *testing.T) {
	app := newApp(nil, nil)
	for _, tc := range []struct{ in, want string }{
		{"clfs file ls l/i --json", "clfs file ls --json -- l/i"},
		{"clfs file ls --json l/i", "clfs file ls --json -- l/i"},
		{"clfs file ls l/i --home h", "clfs --home h file ls -- l/i"},
		{"clfs --home h file ls l/i", "clfs --home h file ls -- l/i"},
		{"clfs item import l/i a --checksum x b --checksum=y", "clfs item import --checksum x --checksum=y -- l/i a b"},
		{"clfs session keep-alive id --progress -5", "clfs session keep-alive --progress -5 -- id"},
		{"clfs library create -- -x --json", "clfs library create -- -x --json"},
		{"clfs file ls l/i --bogus", "clfs file ls --bogus -- l/i"},
		{"clfs item bogus ls", "clfs item -- bogus ls"},
		{"clfs item create --help", "clfs item create --help"},
		{"clfs", "clfs"},
	} {
		got := strings.Join(interspersed(app, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

func TestSessions(t *testing.T) {
	e := newCLI(t)
	p := writeFile(t, filepath.Join(t.TempDir(), "f"), []byte("content"), 0o644)
	e.must("library", "create", "lib1")
	e.must("item", "import", "lib1/a", p)
	e.must("item", "create", "lib1/b")
	// The import's own session is DONE; delete it so that only the two
	// sessions below are listed.
	var done []map[string]any
	e.json(&done, "session", "ls", "--json")
	if len(done) != 1 || done[0]["type"] != "update" || done[0]["state"] != "DONE" {
		t.Fatalf("after import: %v", done)
	}
	e.must("session", "rm", done[0]["id"].(string))

	var up, down string
	e.withManager(func(ctx context.Context, m *sessionmgr.Manager) {
		a, err := m.LibraryByName(ctx, "lib1")
		if err != nil {
			t.Fatal(err)
		}
		ia, _ := m.ItemByName(ctx, a.ID, "a")
		ib, _ := m.ItemByName(ctx, a.ID, "b")
		if up, err = m.CreateUpdateSession(ctx, sessionmgr.UpdateSessionCreateSpec{LibraryItemID: ib.ID}, ""); err != nil {
			t.Fatal(err)
		}
		if down, err = m.CreateDownloadSession(ctx, sessionmgr.DownloadSessionCreateSpec{LibraryItemID: ia.ID}, ""); err != nil {
			t.Fatal(err)
		}
	})

	var all []map[string]any
	e.json(&all, "session", "ls", "--json")
	kinds := map[string]string{}
	for _, s := range all {
		kinds[s["id"].(string)] = s["type"].(string)
		for _, f := range []string{"state", "client_progress", "expiration_time", "library_item_id"} {
			if _, ok := s[f]; !ok {
				t.Errorf("session %v lacks %q", s["id"], f)
			}
		}
	}
	if len(all) != 2 || kinds[up] != "update" || kinds[down] != "download" {
		t.Fatalf("session ls --json: %v", all)
	}
	var onlyB []map[string]any
	e.json(&onlyB, "session", "ls", "--item", "lib1/b", "--json")
	if len(onlyB) != 1 || onlyB[0]["id"] != up {
		t.Errorf("session ls --item lib1/b: %v", onlyB)
	}
	if out := e.must("session", "ls"); !strings.Contains(out, "lib1/b") || !strings.Contains(out, down) {
		t.Errorf("session ls table:\n%s", out)
	}

	info := func(id string) map[string]any {
		var s map[string]any
		e.json(&s, "session", "info", id, "--json")
		return s
	}
	for _, id := range []string{up, down} {
		e.must("session", "keep-alive", id, "--progress", "40")
		if s := info(id); s["client_progress"] != float64(40) || s["state"] != "ACTIVE" || s["type"] != kinds[id] {
			t.Errorf("after keep-alive --progress 40: %v", s)
		}
		e.must("session", "keep-alive", id)
	}
	if err := e.mustFail("session", "keep-alive", up, "--progress", "101"); !errors.Is(err, sessionmgr.ErrInvalidArgument) {
		t.Errorf("progress 101: %v", err)
	}

	e.must("session", "cancel", up)
	if s := info(up); s["state"] != "CANCELED" {
		t.Errorf("after cancel: %v", s)
	}
	e.must("session", "fail", down, "--message", "disk on fire")
	s := info(down)
	if msg, _ := s["error_message"].(map[string]any); s["state"] != "ERROR" || msg["default_message"] != "disk on fire" {
		t.Errorf("after fail: %v", s)
	}
	if out := e.must("session", "info", down); !strings.Contains(out, "disk on fire") || !strings.Contains(out, "lib1/a") {
		t.Errorf("session info:\n%s", out)
	}
	// Ended sessions refuse another end.
	if err := e.mustFail("session", "cancel", down); !errors.Is(err, sessionmgr.ErrNotAllowedInCurrentState) {
		t.Errorf("cancel of a failed session: %v", err)
	}
	e.must("session", "rm", up)
	e.must("session", "rm", down)
	e.json(&all, "session", "ls", "--json")
	if len(all) != 0 {
		t.Errorf("after rm: %v", all)
	}

	unknown := "3f1c0c64-1111-4222-8333-444455556666"
	for _, args := range [][]string{
		{"session", "info", unknown},
		{"session", "keep-alive", unknown},
		{"session", "cancel", unknown},
		{"session", "fail", unknown, "--message", "x"},
		{"session", "rm", unknown},
		{"session", "info", "not-a-uuid"},
	} {
		err := e.mustFail(args...)
		if !errors.Is(err, sessionmgr.ErrNotFound) || !strings.Contains(err.Error(), args[2]) {
			t.Errorf("%v: %v", args, err)
		}
	}
}

func TestExport(t *testing.T) {
	e := newCLI(t)
	src := t.TempDir()
	big := randomBytes(t, 2<<20+3)
	a := writeFile(t, filepath.Join(src, "disk.img"), big, 0o640)
	b := writeFile(t, filepath.Join(src, "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	c := writeFile(t, filepath.Join(src, "empty"), nil, 0o600)
	e.must("library", "create", "lib1")
	e.must("item", "import", "lib1/item", a, b, c)

	dst := filepath.Join(t.TempDir(), "new", "dir")
	e.must("item", "export", "lib1/item", dst)
	for _, p := range []string{a, b, c} {
		want, _ := os.ReadFile(p)
		wantInfo, _ := os.Stat(p)
		out := filepath.Join(dst, filepath.Base(p))
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: exported bytes differ", out)
		}
		info, _ := os.Stat(out)
		if !info.ModTime().Equal(wantInfo.ModTime()) || info.Mode() != wantInfo.Mode() {
			t.Errorf("%s: mode %v mtime %v, want %v %v", out, info.Mode(), info.ModTime(), wantInfo.Mode(), wantInfo.ModTime())
		}
	}
	entries, _ := os.ReadDir(dst)
	if len(entries) != 3 {
		t.Errorf("export left %d entries, want 3: %v", len(entries), entries)
	}
	// The download session is gone, the content still pinned by nothing
	// but the item.
	var sessions []map[string]any
	e.json(&sessions, "session", "ls", "--json")
	for _, s := range sessions {
		if s["type"] == "download" {
			t.Errorf("download session left behind: %v", s)
		}
	}
	// Exporting again overwrites.
	e.must("item", "export", "lib1/item", dst)
	if err := e.mustFail("item", "export", "lib1/nothing", dst); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("export of a missing item: %v", err)
	}
}

func TestLibraryAndItemLifecycle(t *testing.T) {
	e := newCLI(t)
	storage := filepath.Join(t.TempDir(), "backing")
	id := strings.TrimSpace(e.must("library", "create", "lib1", "--storage", storage, "--description", "d"))
	var l sessionmgr.Library
	e.json(&l, "library", "info", "lib1", "--json")
	if l.ID != id || len(l.StorageBackings) != 1 || !strings.Contains(l.StorageBackings[0].StorageURI, storage) {
		t.Errorf("library info: %+v (id %s)", l, id)
	}
	itemID := strings.TrimSpace(e.must("item", "create", "lib1/iso", "--type", "iso", "--description", "an iso"))
	var items []sessionmgr.Item
	e.json(&items, "item", "ls", "lib1", "--json")
	if len(items) != 1 || items[0].ID != itemID || items[0].Type != "iso" || items[0].LibraryID != id {
		t.Errorf("item ls: %+v", items)
	}
	if out := e.must("item", "ls", "lib1"); !strings.Contains(out, "iso") {
		t.Errorf("item ls table:\n%s", out)
	}
	if out := e.must("library", "ls"); !strings.Contains(out, "lib1") {
		t.Errorf("library ls table:\n%s", out)
	}
	if err := e.mustFail("item", "create", "lib1/iso"); !errors.Is(err, sessionmgr.ErrAlreadyExists) {
		t.Errorf("second create: %v", err)
	}
	if err := e.mustFail("item", "create", "lib1/.."); !errors.Is(err, sessionmgr.ErrInvalidArgument) {
		t.Errorf("bad name: %v", err)
	}
	if err := e.mustFail("file", "info", "lib1/iso/nofile"); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("missing file: %v", err)
	}
	e.must("item", "rm", "lib1/iso")
	if err := e.mustFail("item", "info", "lib1/iso"); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("after item rm: %v", err)
	}
	e.must("library", "rm", "lib1")
	var libs []sessionmgr.Library
	e.json(&libs, "library", "ls", "--json")
	if len(libs) != 0 {
		t.Errorf("after library rm: %+v", libs)
	}
	if err := e.mustFail("library", "rm", "lib1"); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("second rm: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	e := newCLI(t)
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"item"},
		{"item", "bogus"},
		{"item", "create"},
		{"item", "create", "noslash"},
		{"item", "create", "a/b/c"},
		{"item", "create", "/b"},
		{"item", "create", "a/b", "extra"},
		{"item", "import", "lib/item"},
		{"item", "export", "lib/item"},
		{"library", "create"},
		{"library", "ls", "extra"},
		{"file", "info", "lib/item"},
		{"file", "info", "lib/item/"},
		{"file", "ls", "--bogus", "l/i"},
		{"session", "info"},
		{"session", "fail", "id"},
		{"session", "keep-alive", "id", "--progress", "abc"},
		{"session", "ls", "--item", "noslash"},
		{"fsck", "extra"},
	} {
		out, err := e.run(args...)
		if err == nil {
			t.Errorf("clfs %v succeeded", args)
			continue
		}
		var ue *usageError
		if !errors.As(err, &ue) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "usage: clfs") {
			t.Errorf("clfs %v: %q is not a one-line usage error", args, err)
		}
		if out != "" {
			t.Errorf("clfs %v printed:\n%s", args, out)
		}
	}
	// A usage error never opens (or creates) the home.
	if _, err := os.Stat(e.home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("usage errors touched the home: %v", err)
	}
	// Main itself returns the error.
	if err := Main([]string{"clfs", "item", "create"}); err == nil {
		t.Error("Main: no error for a usage error")
	}
	// Help is not an error.
	out, err := e.run("item", "create", "--help")
	if err != nil || !strings.Contains(out, "LIB/ITEM") {
		t.Errorf("--help: %v\n%s", err, out)
	}
}

func TestHomeDir(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		flag string
		env  func(string) string
		want string
	}{
		{"/f", env("CLFS_HOME", "/c"), "/f"},
		{"", env("CLFS_HOME", "/c", "XDG_DATA_HOME", "/x", "HOME", "/h"), "/c"},
		{"", env("XDG_DATA_HOME", "/x", "HOME", "/h"), "/x/clfs"},
		{"", env("HOME", "/h"), "/h/.local/share/clfs"},
	} {
		got, err := homeDir(tc.flag, tc.env)
		if err != nil || got != tc.want {
			t.Errorf("homeDir(%q) = %q, %v; want %q", tc.flag, got, err, tc.want)
		}
	}
	if _, err := homeDir("", env()); err == nil {
		t.Error("no HOME: no error")
	}
}

// --meta picks the catalog for every command, and the home remembers it;
// $CLFS_META stands in for the flag; a catalog that cannot be reached is
// one line and a failure.
func TestMetaFlag(t *testing.T) {
	home, cat := t.TempDir(), t.TempDir()
	var out bytes.Buffer
	run := func(args ...string) error {
		out.Reset()
		return run(context.Background(), append([]string{"clfs", "--home", home}, args...), &out, &out)
	}
	url := "badger://" + filepath.Join(cat, "meta")
	if err := run("--meta", url, "library", "create", "OnTheSide"); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(cat, "meta", "MANIFEST")); err != nil {
		t.Fatalf("catalog not where --meta said: %v", err)
	}
	if err := run("library", "ls"); err != nil || !strings.Contains(out.String(), "OnTheSide") {
		t.Fatalf("the home forgot its catalog: %v\n%s", err, out.String())
	}
	t.Setenv("CLFS_META", "etcd://127.0.0.1:1/clfs?dial-timeout=100ms")
	err := run("library", "ls")
	if err == nil || !strings.Contains(err.Error(), "etcd://127.0.0.1:1/clfs") {
		t.Fatalf("unreachable $CLFS_META: %v", err)
	}
	if got := metaURL("badger:///f", func(string) string { return "etcd://e/p" }); got != "badger:///f" {
		t.Errorf("--meta does not win over $CLFS_META: %q", got)
	}
}

func TestErrorLine(t *testing.T) {
	err := errors.New("first\nsecond\n")
	if got := errorLine(err); got != "clfs: first; second" {
		t.Errorf("errorLine = %q", got)
	}
}

func TestImportClientToken(t *testing.T) {
	e := newCLI(t)
	p := writeFile(t, filepath.Join(t.TempDir(), "a"), []byte("one"), 0o644)
	e.must("library", "create", "lib1")
	token := "0b7d3f0e-5a1c-4c2e-9d7a-3e2f1a0b9c8d"
	e.must("item", "import", "lib1/item", p, "--client-token", token)
	before := e.item("lib1/item")
	// A replay gets the first call's session back, which is DONE: the
	// import fails and the item stays as it was.
	writeFile(t, p, []byte("two"), 0o644)
	if err := e.mustFail("item", "import", "lib1/item", p, "--client-token", token); !errors.Is(err, sessionmgr.ErrNotAllowedInCurrentState) {
		t.Errorf("replayed token: %v", err)
	}
	if after := e.item("lib1/item"); after.ContentVersion != before.ContentVersion {
		t.Errorf("content_version %s -> %s", before.ContentVersion, after.ContentVersion)
	}
	if err := e.mustFail("item", "import", "lib1/item", p, "--client-token", "not-a-uuid"); !errors.Is(err, sessionmgr.ErrInvalidArgument) {
		t.Errorf("bad token: %v", err)
	}
}
