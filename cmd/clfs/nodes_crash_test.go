package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"clfs/sessionmgr"
)

// TestNodeKill9MidWrite: two `clfs mount` processes on one etcd catalog
// and one storage directory; node A dies (kill -9) while a file is half
// written through it. B never shows the half-written file, keeps every
// file A committed, and fails A's update session within A's lease; A's
// restart finds its sessions ended, its staging gone and fsck clean.
func TestNodeKill9MidWrite(t *testing.T) {
	url := sharedMetaURL(t)
	bin := buildClfs(t)
	storage := t.TempDir()
	homeA, homeB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	mntA, mntB := filepath.Join(t.TempDir(), "mnt-a"), filepath.Join(t.TempDir(), "mnt-b")
	for _, d := range []string{mntA, mntB} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const lease = 3 * time.Second
	nodeFlags := []string{"--meta", url, "--node-lease", lease.String()}
	a := startDaemon(t, bin, homeA, mntA, nodeFlags...)
	b := startDaemon(t, bin, homeB, mntB, nodeFlags...)
	clfs := func(home string, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(context.Background(), append([]string{"clfs", "--home", home}, args...), &out, &errOut); err != nil {
			t.Fatalf("clfs %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	clfs(homeA, "library", "create", "lib", "--storage", storage)
	itemA, itemB := filepath.Join(mntA, "lib", "item"), filepath.Join(mntB, "lib", "item")
	if err := os.MkdirAll(itemA, 0o755); err != nil {
		t.Fatal(err)
	}
	kept := bytes.Repeat([]byte("committed on A;"), 100_000)
	if err := os.WriteFile(filepath.Join(itemA, "kept.bin"), kept, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A's file on B", func() bool {
		got, err := os.ReadFile(filepath.Join(itemB, "kept.bin"))
		return err == nil && bytes.Equal(got, kept)
	})

	f, err := os.Create(filepath.Join(itemA, "partial.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte{7}, 1<<20)); err != nil {
		t.Fatal(err)
	}
	var sessions []struct{ ID, State, Type string }
	clfsJSON(t, homeB, &sessions, "session", "ls")
	active := ""
	for _, s := range sessions {
		if s.Type == "update" && s.State == "ACTIVE" {
			active = s.ID
		}
	}
	if active == "" {
		t.Fatalf("no ACTIVE update session for the write on A, as B lists them: %+v", sessions)
	}
	killed := time.Now()
	a.kill9(t, bin, mntA, false)
	f.Close()

	// B fails A's session once A's lease lapsed (B's next round after).
	var failedAfter time.Duration
	waitFor(t, "A's session failed by B", func() bool {
		var s struct {
			State        string
			ErrorMessage *struct {
				DefaultMessage string `json:"default_message"`
			} `json:"error_message"`
		}
		clfsJSON(t, homeB, &s, "session", "info", active)
		if s.State != "ERROR" {
			return false
		}
		if s.ErrorMessage == nil || !strings.Contains(s.ErrorMessage.DefaultMessage, "no heartbeat") {
			t.Fatalf("A's session failed, but not for A's silence: %+v", s.ErrorMessage)
		}
		failedAfter = time.Since(killed)
		return true
	})
	// The lease, then at most a round of B's (a third of it), then the
	// time a leader change takes if A led: another lease.
	if failedAfter > 2*lease+lease/3+2*time.Second {
		t.Errorf("A's session failed %v after A died, lease %v", failedAfter, lease)
	}
	var nodes []sessionmgr.NodeInfo
	clfsJSON(t, homeB, &nodes, "status")
	if i := slices.IndexFunc(nodes, func(n sessionmgr.NodeInfo) bool { return n.Home == homeA }); i < 0 || nodes[i].State != "down" {
		t.Fatalf("A in B's status after its death: %+v", nodes)
	}
	if entries, _ := os.ReadDir(itemB); slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == "partial.bin" }) {
		t.Fatal("the file A was writing when it died is listed on B")
	}
	if got, err := os.ReadFile(filepath.Join(itemB, "kept.bin")); err != nil || !bytes.Equal(got, kept) {
		t.Fatalf("A's committed file on B after A's death: %v, %d bytes", err, len(got))
	}

	a = startDaemon(t, bin, homeA, mntA, "--node-lease", lease.String()) // the home remembers its catalog
	var rep struct {
		Files    int `json:"files_checked"`
		Problems []struct{ File, Path, Message string }
	}
	clfsJSON(t, homeA, &rep, "fsck")
	if len(rep.Problems) != 0 || rep.Files != 1 {
		t.Fatalf("fsck after A's restart: %+v, want 1 file and no problem", rep)
	}
	if staged, _ := filepath.Glob(filepath.Join(storage, "staging", "*", "*")); len(staged) != 0 {
		t.Errorf("staging left after A's restart: %v", staged)
	}
	if got, err := os.ReadFile(filepath.Join(itemA, "kept.bin")); err != nil || !bytes.Equal(got, kept) {
		t.Fatalf("A's committed file on A after its restart: %v, %d bytes", err, len(got))
	}
	clfsJSON(t, homeA, &nodes, "status")
	if i := slices.IndexFunc(nodes, func(n sessionmgr.NodeInfo) bool { return n.Home == homeA }); i < 0 || nodes[i].State != "up" {
		t.Fatalf("A in its status after its restart: %+v", nodes)
	}
	t.Logf("A's session failed %v after kill -9 (lease %v)", failedAfter.Round(time.Millisecond), lease)
	a.stop(t)
	b.stop(t)
}

// waitFor polls f for up to 30 s.
func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
