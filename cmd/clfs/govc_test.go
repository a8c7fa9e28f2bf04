package main

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGovcAgainstServe runs the govc commands README.md shows against a
// real `clfs serve`: a govc built from govmomi v0.56.0's own command
// packages (testdata/govc), trusting the server by the thumbprint it
// printed (GOVC_TLS_KNOWN_HOSTS).
func TestGovcAgainstServe(t *testing.T) {
	bin := buildClfs(t)
	govc := filepath.Join(t.TempDir(), "govc")
	if out, err := exec.Command("go", "build", "-o", govc, "../../testdata/govc").CombinedOutput(); err != nil {
		t.Fatalf("build testdata/govc: %v\n%s", err, out)
	}
	home := t.TempDir()
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte("pa ss\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startAPIProcess(t, bin, home, "serve", "--listen", "127.0.0.1:0", "--user", "administrator@vsphere.local", "--password-file", pwFile)
	defer srv.stop(t)
	host := strings.TrimPrefix(srv.url, "https://")
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(host+" "+srv.thumbprint+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	govmomiHome := t.TempDir()
	run := func(wantOK bool, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, govc, args...)
		cmd.Env = append(os.Environ(), "GOVC_URL="+srv.url, "GOVC_USERNAME=administrator@vsphere.local", "GOVC_PASSWORD=pa ss",
			"GOVC_TLS_KNOWN_HOSTS="+knownHosts, "GOVMOMI_HOME="+govmomiHome)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("govc %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, srv.log)
		}
		return string(out)
	}
	// A second server of the same home is refused: the first holds it.
	second := exec.Command(bin, "--home", home, "serve", "--listen", "127.0.0.1:0", "--user", "u", "--password-file", pwFile)
	if out, err := second.CombinedOutput(); err == nil || !strings.Contains(string(out), "another clfs mount serves this home") {
		t.Errorf("a second clfs serve of the home: %v\n%s", err, out)
	}

	// The library is made with clfs (govc library.create needs a
	// datastore); the CLI goes through the serving process's socket.
	if out, err := exec.Command(bin, "--home", home, "library", "create", "isos").CombinedOutput(); err != nil {
		t.Fatalf("clfs library create: %v\n%s", err, out)
	}
	iso := filepath.Join(t.TempDir(), "ubuntu.iso")
	isoData := bytes.Repeat([]byte("an iso image "), 100<<10)
	if err := os.WriteFile(iso, isoData, 0o644); err != nil {
		t.Fatal(err)
	}
	run(true, "library.import", "isos", iso)
	pulled := bytes.Repeat([]byte("pulled "), 50<<10)
	source := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "seed.img", time.Time{}, bytes.NewReader(pulled))
	}))
	// The client's own HEAD does not trust the source (it then asks
	// the server's probe): its handshake error is expected, not news.
	source.Config.ErrorLog = log.New(io.Discard, "", 0)
	source.StartTLS()
	defer source.Close()
	run(true, "library.import", "-pull", "isos", source.URL+"/seed.img")

	if out := run(true, "library.ls"); strings.TrimSpace(out) != "/isos" {
		t.Errorf("library.ls: %q", out)
	}
	if out := run(true, "library.ls", "/isos/*"); !strings.Contains(out, "/isos/ubuntu\n") || !strings.Contains(out, "/isos/seed\n") {
		t.Errorf("library.ls /isos/*: %q", out)
	}
	if out := run(true, "library.ls", "/isos/ubuntu/*"); strings.TrimSpace(out) != "/isos/ubuntu/ubuntu.iso" {
		t.Errorf("library.ls /isos/ubuntu/*: %q", out)
	}
	if out := run(true, "library.info", "/isos/ubuntu"); !strings.Contains(out, "Path:         /isos/ubuntu") || !strings.Contains(out, "Type:         iso") {
		t.Errorf("library.info: %q", out)
	}

	dest := t.TempDir()
	run(true, "library.export", "/isos/ubuntu/ubuntu.iso", filepath.Join(dest, "ubuntu.iso"))
	run(true, "library.export", "/isos/seed", dest)
	for name, want := range map[string][]byte{"ubuntu.iso": isoData, "seed.img": pulled} {
		if got, err := os.ReadFile(filepath.Join(dest, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("exported %s: %d bytes (%v), want %d", name, len(got), err, len(want))
		}
	}

	// Two imports (DONE) and two exports (ACTIVE download sessions).
	out := run(true, "library.session.ls")
	if strings.Count(out, "Update") != 2 || strings.Count(out, "Download") != 2 {
		t.Fatalf("library.session.ls:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && (strings.Contains(line, "Download") || strings.Contains(line, "Update")) {
			run(true, "library.session.rm", f[0])
		}
	}
	if out := run(true, "library.session.ls"); strings.Contains(out, "Update") || strings.Contains(out, "Download") {
		t.Errorf("library.session.ls after session.rm:\n%s", out)
	}

	run(true, "library.rm", "/isos/ubuntu")
	if out := run(true, "library.ls", "/isos/*"); strings.Contains(out, "ubuntu") {
		t.Errorf("after library.rm /isos/ubuntu: %q", out)
	}
	run(true, "library.rm", "/isos")
	if out := run(true, "library.ls"); strings.TrimSpace(out) != "" {
		t.Errorf("after library.rm /isos: %q", out)
	}
}

// TestServeFlags: what clfs serve and clfs mount --listen refuse, each in
// one line, before anything is bound or made.
func TestServeFlags(t *testing.T) {
	e := newCLI(t)
	dir := t.TempDir()
	empty, pw := filepath.Join(dir, "empty"), filepath.Join(dir, "pw")
	os.WriteFile(empty, []byte("\n"), 0o600)
	os.WriteFile(pw, []byte("secret\n"), 0o600)
	t.Setenv("CLFS_USER", "")
	t.Setenv("CLFS_PASSWORD", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "--listen is required"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--user", "u"}, "needs a password"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--password-file", pw}, "needs a user"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--user", "u", "--password-file", empty}, "is empty"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--user", "u", "--password-file", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"serve", "--listen", "nonsense", "--user", "u", "--password-file", pw}, "want HOST:PORT"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--user", "u", "--password-file", pw, "--tls-cert", pw}, "go together"},
		{[]string{"mount", dir, "--password-file", pw}, "--password-file needs --listen"},
	} {
		err := e.mustFail(c.args...)
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("clfs %s: %v, want one line with %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(e.home, "tls")); err == nil {
		t.Error("a refused serve made a certificate")
	}
}
