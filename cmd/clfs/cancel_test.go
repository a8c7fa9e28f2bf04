package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSessionCancelAndFailDuringCp (concurrency suite): `clfs session
// cancel` and `clfs session fail`, run while a real cp writes into the
// mount of a separate daemon, end that cp's upload: cp exits non-zero
// (its next write or its close fails with EIO), the previous version is
// intact, the session is CANCELED (or ERROR with the message), no staging
// is left, and the next cp works. The cp reads from a pipe the test
// feeds, so the command runs at a fixed point: after 1 MiB was written.
func TestSessionCancelAndFailDuringCp(t *testing.T) {
	bin := buildClfs(t)
	home, mnt := t.TempDir(), filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	d := startDaemon(t, bin, home, mnt)
	defer d.stop(t)
	item := filepath.Join(mnt, "lib", "item")
	if err := os.MkdirAll(item, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(item, "disk.img")
	v1 := []byte("the committed version\n")
	if err := os.WriteFile(target, v1, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		state string
	}{
		{[]string{"session", "cancel"}, "CANCELED"},
		{[]string{"session", "fail", "--message", "operator says no"}, "ERROR"},
	} {
		t.Run(tc.args[1], func(t *testing.T) {
			cp := exec.Command("cp", "/dev/stdin", target)
			in, err := cp.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			cp.Stdout, cp.Stderr = &out, &out
			if err := cp.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if cp.ProcessState == nil {
					cp.Process.Kill()
					cp.Wait()
				}
			}()
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			if _, err := in.Write(chunk); err != nil {
				t.Fatal(err)
			}
			// Wait until the upload has the bytes.
			var id string
			for i := 0; id == ""; i++ {
				if i == 200 {
					t.Fatal("no ACTIVE update session with 1 MiB transferred while cp writes")
				}
				var sessions []struct {
					ID, State, Type string
					Bytes           int64 `json:"x_bytes_transferred"`
				}
				clfsJSON(t, home, &sessions, "session", "ls")
				for _, s := range sessions {
					if s.Type == "update" && s.State == "ACTIVE" && s.Bytes >= 1<<20 {
						id = s.ID
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			var o, e bytes.Buffer
			args := append([]string{"clfs", "--home", home}, tc.args...)
			args = append(append(args[:5:5], id), args[5:]...) // clfs --home H session cancel ID ...
			if err := run(context.Background(), args, &o, &e); err != nil {
				t.Fatalf("%v: %v\n%s%s", args[3:], err, o.String(), e.String())
			}
			in.Write(chunk) // may fail: cp may have given up already
			in.Close()
			err = cp.Wait()
			if err == nil {
				t.Fatalf("cp exited 0 after its session was %s:\n%s", tc.state, out.String())
			}
			if !strings.Contains(out.String(), "Input/output error") {
				t.Errorf("cp's message: %q; want an Input/output error", out.String())
			}
			if got, err := os.ReadFile(target); err != nil || !bytes.Equal(got, v1) {
				t.Fatalf("after the %s upload: %q %v; want the committed version", tc.state, got, err)
			}
			var info struct {
				State        string
				ErrorMessage *struct {
					DefaultMessage string `json:"default_message"`
				} `json:"error_message"`
			}
			clfsJSON(t, home, &info, "session", "info", id)
			if info.State != tc.state {
				t.Errorf("session %s: %s, want %s", id, info.State, tc.state)
			}
			if tc.state == "ERROR" {
				b, _ := json.Marshal(info.ErrorMessage)
				if !strings.Contains(string(b), "operator says no") {
					t.Errorf("failed session's error_message %s lacks the operator's message", b)
				}
			}
			if staged, _ := filepath.Glob(filepath.Join(home, "storage", "staging", id, "*")); len(staged) != 0 {
				t.Errorf("staging of the %s session left: %v", tc.state, staged)
			}
		})
	}
	v2 := []byte("written after the cancelled uploads\n")
	src := filepath.Join(t.TempDir(), "v2")
	os.WriteFile(src, v2, 0o644)
	if out, err := exec.Command("cp", src, target).CombinedOutput(); err != nil {
		t.Fatalf("cp after the cancelled uploads: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, v2) {
		t.Fatalf("after a new cp: %q", got)
	}
}
