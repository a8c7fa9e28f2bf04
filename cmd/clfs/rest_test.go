package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmware/govmomi/vapi/library"
	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vim25/soap"
)

// TestGovmomiAgainstServe drives a real `clfs serve` with govmomi's own
// REST client (vapi/rest, vapi/library), as govc does: a library and an
// item, an import with PUSH and one with PULL from a local HTTPS server,
// file lists, an export through a download session, session lists and
// deletes. Then the same home is mounted (`clfs mount --listen`, one
// process for both): the imported files read the same through FUSE, and
// a file copied into the mount is exported through the API.
func TestGovmomiAgainstServe(t *testing.T) {
	bin := buildClfs(t)
	home := t.TempDir()
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	srv := startAPIProcess(t, bin, home, "serve", "--listen", "127.0.0.1:0", "--user", "admin", "--password-file", pwFile)
	c := govmomiLogin(t, srv, "admin", "correct horse")
	m := library.NewManager(c)

	libID, err := m.CreateLibrary(ctx, library.Library{Name: "isos", Type: "LOCAL"})
	if err != nil {
		t.Fatal(err)
	}
	itemID, err := m.CreateLibraryItem(ctx, library.Item{Name: "ubuntu", LibraryID: libID, Type: library.ItemTypeISO})
	if err != nil {
		t.Fatal(err)
	}
	libs, err := m.GetLibraries(ctx)
	if err != nil || len(libs) != 1 || libs[0].Name != "isos" || libs[0].ID != libID {
		t.Fatalf("GetLibraries: %+v %v", libs, err)
	}

	// PUSH: add, PUT to the upload endpoint, complete.
	pushed := bytes.Repeat([]byte("clfs push "), 300<<10) // 3 MB
	pushSum := sha256.Sum256(pushed)
	sid, err := m.CreateLibraryItemUpdateSession(ctx, library.Session{LibraryItemID: itemID})
	if err != nil {
		t.Fatal(err)
	}
	up, err := m.AddLibraryItemFile(ctx, sid, library.UpdateFile{Name: "ubuntu.iso", SourceType: "PUSH", Size: int64(len(pushed)),
		Checksum: &library.Checksum{Algorithm: "SHA256", Checksum: hex.EncodeToString(pushSum[:])}})
	if err != nil {
		t.Fatal(err)
	}
	if up.UploadEndpoint == nil || up.Status != "WAITING_FOR_TRANSFER" {
		t.Fatalf("added file: %+v", up)
	}
	govmomiPut(t, c, up.UploadEndpoint.URI, pushed)
	if err := m.CompleteLibraryItemUpdateSession(ctx, sid); err != nil {
		t.Fatal(err)
	}
	if s, err := m.GetLibraryItemUpdateSession(ctx, sid); err != nil || s.State != "DONE" {
		t.Fatalf("push session: %+v %v", s, err)
	}

	// PULL from a local HTTPS server with a self-signed certificate,
	// trusted by its thumbprint (AddLibraryItemFileFromURI reads it).
	pulled := bytes.Repeat([]byte("clfs pull "), 200<<10)
	pullSum := sha256.Sum256(pulled)
	source := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "seed.img", time.Time{}, bytes.NewReader(pulled))
	}))
	// The client's own HEAD does not trust the source (it then asks
	// the server's probe): its handshake error is expected, not news.
	source.Config.ErrorLog = log.New(io.Discard, "", 0)
	source.StartTLS()
	defer source.Close()
	sid2, err := m.CreateLibraryItemUpdateSession(ctx, library.Session{LibraryItemID: itemID})
	if err != nil {
		t.Fatal(err)
	}
	pf, err := m.AddLibraryItemFileFromURI(ctx, sid2, "seed.img", source.URL+"/seed.img", library.Checksum{Algorithm: "SHA256", Checksum: hex.EncodeToString(pullSum[:])})
	if err != nil {
		t.Fatal(err)
	}
	// govmomi's own HEAD does not trust the source, so it asks the
	// server's probe, and pins the certificate the probe reports.
	if pf.SourceType != "PULL" || pf.SourceEndpoint == nil || (pf.SourceEndpoint.SSLCertificateThumbprint == "" && pf.SourceEndpoint.SSLCertificate == "") {
		t.Errorf("PULL file: %+v", pf)
	}
	if err := m.CompleteLibraryItemUpdateSession(ctx, sid2); err != nil {
		t.Fatal(err)
	}
	// govc polls until the session leaves ACTIVE.
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := m.GetLibraryItemUpdateSession(ctx, sid2)
		if err != nil {
			t.Fatal(err)
		}
		if s.State == "DONE" {
			break
		}
		if s.State != "ACTIVE" || time.Now().After(deadline) {
			t.Fatalf("pull session: %+v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The item's files: sizes, SHA-256 checksums, versions.
	files, err := m.ListLibraryItemFiles(ctx, itemID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][32]byte{"ubuntu.iso": pushSum, "seed.img": pullSum}
	wantSize := map[string]int{"ubuntu.iso": len(pushed), "seed.img": len(pulled)}
	if len(files) != 2 {
		t.Fatalf("files: %+v", files)
	}
	for _, f := range files {
		sum := want[f.Name]
		if f.Size == nil || *f.Size != int64(wantSize[f.Name]) || f.Version != "1" || f.Checksum == nil || !strings.EqualFold(f.Checksum.Checksum, hex.EncodeToString(sum[:])) || f.Cached == nil || !*f.Cached {
			t.Errorf("file %+v (size %v, checksum %+v)", f, f.Size, f.Checksum)
		}
	}
	item, err := m.GetLibraryItem(ctx, itemID)
	if err != nil || item.ContentVersion != "3" || item.Size != int64(len(pushed)+len(pulled)) {
		t.Errorf("item after two imports: %+v %v", item, err)
	}

	// Export through a download session, as govc library.export does.
	did, err := m.CreateLibraryItemDownloadSession(ctx, library.Session{LibraryItemID: itemID})
	if err != nil {
		t.Fatal(err)
	}
	got := govmomiExport(t, c, m, did, "ubuntu.iso")
	if !bytes.Equal(got, pushed) {
		t.Errorf("exported ubuntu.iso: %d bytes, want %d", len(got), len(pushed))
	}
	if got := govmomiExport(t, c, m, did, "seed.img"); !bytes.Equal(got, pulled) {
		t.Errorf("exported seed.img: %d bytes, want %d", len(got), len(pulled))
	}

	// Session lists, then deletes.
	updates, err := m.ListLibraryItemUpdateSession(ctx)
	if err != nil || !slices.Contains(updates, sid) || !slices.Contains(updates, sid2) {
		t.Errorf("update sessions %v (%v), want %s and %s", updates, err, sid, sid2)
	}
	downloads, err := m.ListLibraryItemDownloadSession(ctx)
	if err != nil || !slices.Equal(downloads, []string{did}) {
		t.Errorf("download sessions %v (%v), want [%s]", downloads, err, did)
	}
	for _, id := range []string{sid, sid2} {
		if err := m.DeleteLibraryItemUpdateSession(ctx, id); err != nil {
			t.Error(err)
		}
	}
	if err := m.DeleteLibraryItemDownloadSession(ctx, did); err != nil {
		t.Error(err)
	}
	if updates, _ := m.ListLibraryItemUpdateSession(ctx); len(updates) != 0 {
		t.Errorf("update sessions after delete: %v", updates)
	}
	if _, err := m.GetLibraryItemDownloadSession(ctx, did); err == nil {
		t.Error("a deleted download session is still there")
	}

	if err := c.Logout(ctx); err != nil {
		t.Error(err)
	}
	if _, err := m.ListLibraries(ctx); !rest.IsStatusError(err, http.StatusUnauthorized) {
		t.Errorf("a call after logout: %v, want 401", err)
	}
	srv.stop(t)

	// The same home, mounted, with the API in the same process.
	mnt := t.TempDir()
	mt := startAPIProcess(t, bin, home, "mount", mnt, "--listen", "127.0.0.1:0", "--user", "admin", "--password-file", pwFile)
	defer mt.stop(t)
	for name, data := range map[string][]byte{"ubuntu.iso": pushed, "seed.img": pulled} {
		b, err := os.ReadFile(filepath.Join(mnt, "isos", "ubuntu", name))
		if err != nil || !bytes.Equal(b, data) {
			t.Errorf("%s through the mount: %d bytes, %v", name, len(b), err)
		}
	}
	written := bytes.Repeat([]byte("from the mount "), 10<<10)
	if err := os.WriteFile(filepath.Join(mnt, "isos", "ubuntu", "notes.txt"), written, 0o644); err != nil {
		t.Fatal(err)
	}
	c = govmomiLogin(t, mt, "admin", "correct horse")
	m = library.NewManager(c)
	did, err = m.CreateLibraryItemDownloadSession(ctx, library.Session{LibraryItemID: itemID})
	if err != nil {
		t.Fatal(err)
	}
	if got := govmomiExport(t, c, m, did, "notes.txt"); !bytes.Equal(got, written) {
		t.Errorf("notes.txt written through the mount, exported: %d bytes, want %d", len(got), len(written))
	}
	f, err := m.GetLibraryItemFile(ctx, itemID, "notes.txt")
	writtenSum := sha256.Sum256(written)
	if err != nil || f.Checksum == nil || f.Checksum.Checksum != hex.EncodeToString(writtenSum[:]) {
		t.Errorf("notes.txt: %+v %v", f, err)
	}
}

// apiProcess is a clfs serve or clfs mount --listen child process.
type apiProcess struct {
	cmd        *exec.Cmd
	log        *syncBuffer
	url        string // https://127.0.0.1:PORT
	thumbprint string
}

var apiListening = regexp.MustCompile(`msg="vSphere API listening" url=(https://\S+)/rest bound=\S+ sha1_thumbprint=(\S+)`)

func startAPIProcess(t *testing.T, bin, home string, args ...string) *apiProcess {
	t.Helper()
	p := &apiProcess{log: &syncBuffer{}}
	p.cmd = exec.Command(bin, append([]string{"--home", home}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
			if args[0] == "mount" {
				exec.Command("umount", "-l", args[1]).Run()
			}
		}
	})
	// Up once the API listens and, for a mount, once it is mounted.
	for i := 0; ; i++ {
		log := p.log.String()
		if mm := apiListening.FindStringSubmatch(log); mm != nil && (args[0] != "mount" || strings.Contains(log, "msg=mounted")) {
			p.url, p.thumbprint = mm[1], mm[2]
			return p
		}
		if i == 400 {
			t.Fatalf("clfs %s did not come up:\n%s", args[0], log)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (p *apiProcess) stop(t *testing.T) {
	t.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("clfs after SIGTERM: %v\n%s", err, p.log)
	}
	if strings.Contains(p.log.String(), "panic") {
		t.Errorf("the daemon panicked:\n%s", p.log)
	}
}

// govmomiLogin logs in as govc does, trusting the server by the
// thumbprint it printed (GOVC_THUMBPRINT), not by -k.
func govmomiLogin(t *testing.T, p *apiProcess, user, password string) *rest.Client {
	t.Helper()
	u, err := soap.ParseURL(p.url + "/sdk")
	if err != nil {
		t.Fatal(err)
	}
	sc := soap.NewClient(u, false)
	sc.SetThumbprint(u.Host, p.thumbprint)
	c := &rest.Client{Client: sc.NewServiceClient(rest.Path, "")}
	if err := c.Login(context.Background(), url.UserPassword(user, "wrong")); !rest.IsStatusError(err, http.StatusUnauthorized) {
		t.Fatalf("login with a wrong password: %v, want 401", err)
	}
	if err := c.Login(context.Background(), url.UserPassword(user, password)); err != nil {
		t.Fatalf("login: %v\n%s", err, p.log)
	}
	return c
}

func govmomiPut(t *testing.T, c *rest.Client, uri string, data []byte) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	p := soap.DefaultUpload
	p.ContentLength = int64(len(data))
	if err := c.Upload(context.Background(), bytes.NewReader(data), u, &p); err != nil {
		t.Fatalf("PUT %s: %v", uri, err)
	}
}

// govmomiExport prepares a file of a download session, waits for PREPARED as
// govc does, and GETs its endpoint.
func govmomiExport(t *testing.T, c *rest.Client, m *library.Manager, did, name string) []byte {
	t.Helper()
	ctx := context.Background()
	if _, err := m.PrepareLibraryItemDownloadSessionFile(ctx, did, name); err != nil {
		t.Fatal(err)
	}
	var f *library.DownloadFile
	for i := 0; ; i++ {
		var err error
		if f, err = m.GetLibraryItemDownloadSessionFile(ctx, did, name); err != nil {
			t.Fatal(err)
		}
		if f.Status == "PREPARED" {
			break
		}
		if i == 100 {
			t.Fatalf("%s never PREPARED: %+v", name, f)
		}
		time.Sleep(50 * time.Millisecond)
	}
	u, err := url.Parse(f.DownloadEndpoint.URI)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := c.Download(ctx, u, &soap.DefaultDownload)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
