package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildClfs builds the clfs binary for tests that need a separate process.
func buildClfs(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "clfs")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// daemon is a `clfs mount` child process.
type daemon struct {
	cmd *exec.Cmd
	log *bytes.Buffer
}

func startDaemon(t *testing.T, bin, home, mnt string) *daemon {
	t.Helper()
	d := &daemon{log: &bytes.Buffer{}}
	d.cmd = exec.Command(bin, "--home", home, "mount", mnt)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; !isMountpoint(mnt); i++ {
		if i == 200 {
			d.cmd.Process.Kill()
			t.Fatalf("clfs mount did not come up:\n%s", d.log)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return d
}

// kill9 kills the daemon as a crash would and clears the stale mount,
// checking first that a new mount there is refused with a useful line.
func (d *daemon) kill9(t *testing.T, bin, mnt string) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
	out, err := exec.Command(bin, "mount", mnt).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "stale mount") || !strings.Contains(string(out), "fusermount3 -u") {
		t.Errorf("clfs mount on the stale mountpoint: %v: %s; want a line about the stale mount", err, out)
	}
	if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
		t.Fatalf("clear stale mount: %v\n%s", err, out)
	}
}

func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("clfs mount after SIGTERM: %v\n%s", err, d.log)
	}
}

// Guarantees 1 and 3 of ARCHITECTURE.md: a file whose close(2) returned 0
// survives kill -9 of the daemon right after; a file being written when
// the daemon dies is not visible at all; the restarted daemon is clean:
// fsck passes, the dead mount's session is no longer ACTIVE and its
// staging is gone.
func TestKill9AfterCloseKeepsTheFile(t *testing.T) {
	bin := buildClfs(t)
	home, mnt := t.TempDir(), filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	want := map[string][]byte{}
	for round := 0; round < 3; round++ {
		d := startDaemon(t, bin, home, mnt)
		item := filepath.Join(mnt, "lib", "item")
		if err := os.MkdirAll(item, 0o755); err != nil {
			t.Fatal(err)
		}
		name := "closed-" + string(rune('a'+round)) + ".bin"
		data := make([]byte, (round+1)<<20+round)
		rand.Read(data)
		if err := os.WriteFile(filepath.Join(item, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = data
		// A second file is half written when the daemon dies.
		f, err := os.Create(filepath.Join(item, "open.bin"))
		if err != nil {
			t.Fatal(err)
		}
		f.Write(data[:len(data)/2])
		d.kill9(t, bin, mnt)
		f.Close()

		d = startDaemon(t, bin, home, mnt)
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{"clfs", "--home", home, "fsck"}, &out, &errOut); err != nil {
			t.Fatalf("round %d: fsck after kill -9: %v\n%s%s", round, err, out.String(), errOut.String())
		}
		out.Reset()
		if err := run(context.Background(), []string{"clfs", "--home", home, "session", "ls", "--json"}, &out, &errOut); err != nil {
			t.Fatal(err)
		}
		var sessions []struct{ ID, State, Type string }
		if err := json.Unmarshal(out.Bytes(), &sessions); err != nil || len(sessions) == 0 {
			t.Fatalf("round %d: session ls --json: %v\n%s", round, err, out.String())
		}
		for _, s := range sessions {
			if s.State == "ACTIVE" {
				t.Errorf("round %d: session %s (%s) still ACTIVE after the restart", round, s.ID, s.Type)
			}
		}
		staged, _ := filepath.Glob(filepath.Join(home, "storage", "staging", "*", "*"))
		if len(staged) != 0 {
			t.Errorf("round %d: staging left after restart: %v", round, staged)
		}
		for n, w := range want {
			got, err := os.ReadFile(filepath.Join(item, n))
			if err != nil || !bytes.Equal(got, w) {
				t.Fatalf("round %d: %s after kill -9: %v (%d bytes, want %d)", round, n, err, len(got), len(w))
			}
		}
		if _, err := os.Stat(filepath.Join(item, "open.bin")); !os.IsNotExist(err) {
			t.Fatalf("round %d: the file being written when the daemon died is visible: %v", round, err)
		}
		d.stop(t)
		if strings.Contains(d.log.String(), "panic") {
			t.Fatalf("daemon log shows a panic:\n%s", d.log)
		}
	}
}
