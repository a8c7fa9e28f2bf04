package sessionmgr

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server-side PULL imports: real HTTP(S) servers from httptest, real
// Badger, the fake clock for expiry. Pulls run on real goroutines, so
// tests wait for them with eventually.

// eventually polls cond for up to 10s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type pullEnv struct {
	*testEnv
	item, s string
}

func newPullEnv(t *testing.T, inlineLimit int64) *pullEnv {
	t.Helper()
	e := newTestEnvInline(t, inlineLimit)
	item := e.item(e.library("lib"), "iso")
	return &pullEnv{testEnv: e, item: item, s: e.updateSession(item)}
}

func (e *pullEnv) addPull(name string, ep TransferEndpoint) *UpdateSessionFile {
	e.t.Helper()
	info, err := e.m.AddFile(e.ctx, e.s, FileAddSpec{Name: name, SourceType: SourcePull, SourceEndpoint: &ep})
	e.must(err)
	return info
}

// settled waits until the file's pull has ended and returns its info.
func (e *pullEnv) settled(name string) *UpdateSessionFile {
	e.t.Helper()
	var f *UpdateSessionFile
	eventually(e.t, "pull of "+name+" to end", func() bool {
		var err error
		f, err = e.m.GetSessionFile(e.ctx, e.s, name)
		e.must(err)
		return f.Status != TransferTransferring
	})
	eventually(e.t, "pull goroutines to end", func() bool { return e.m.pullsRunning.Load() == 0 })
	return f
}

// waitTransferred waits until a file being pulled has received n bytes.
func (e *pullEnv) waitTransferred(name string, n int64) {
	e.t.Helper()
	eventually(e.t, fmt.Sprintf("%d bytes of %s", n, name), func() bool {
		f, err := e.m.GetSessionFile(e.ctx, e.s, name)
		e.must(err)
		if f.Status != TransferTransferring {
			e.t.Fatalf("%s: %+v", name, f)
		}
		return f.BytesTransferred == n
	})
}

// wantReady fails unless f is READY with content's size.
func wantReady(t testing.TB, f *UpdateSessionFile, content string) {
	t.Helper()
	if f.Status != TransferReady || f.Size == nil || *f.Size != int64(len(content)) || f.BytesTransferred != int64(len(content)) {
		t.Fatalf("file %+v (error %v), want READY with %d bytes", f, f.ErrorMessage, len(content))
	}
}

// wantError fails unless f is ERROR with a message naming it and
// containing each of causes.
func wantError(t testing.TB, f *UpdateSessionFile, causes ...string) {
	t.Helper()
	if f.Status != TransferError || f.ErrorMessage == nil {
		t.Fatalf("file %+v, want ERROR", f)
	}
	msg := f.ErrorMessage.DefaultMessage
	if !strings.Contains(msg, strconv.Quote(f.Name)) {
		t.Errorf("error message %q does not name file %q", msg, f.Name)
	}
	for _, c := range causes {
		if !strings.Contains(msg, c) {
			t.Errorf("error message %q does not contain %q", msg, c)
		}
	}
}

func serve(t *testing.T, content string) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(content))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// newCert makes a self-signed certificate for 127.0.0.1 other than the
// one every httptest server shares.
func newCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "other"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func serveWithCert(t *testing.T, cert tls.Certificate, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func thumbprints(cert *x509.Certificate) (sha1hex, sha256hex string) {
	a := sha1.Sum(cert.Raw)
	b := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(a[:]), hex.EncodeToString(b[:])
}

func withColons(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestPullAddRejectsBadSpecs(t *testing.T) {
	t.Parallel()
	e := newPullEnv(t, 0)
	pemOK := CertificatePEM(serve(t, "").Certificate())
	ep := func(uri string) *TransferEndpoint { return &TransferEndpoint{URI: uri} }
	for _, c := range []struct {
		name string
		spec FileAddSpec
		want string
	}{
		{"no endpoint", FileAddSpec{}, "source_endpoint"},
		{"empty uri", FileAddSpec{SourceEndpoint: ep("")}, "source_endpoint"},
		{"ds", FileAddSpec{SourceEndpoint: ep("ds:///vmfs/volumes/x/a.iso")}, "ds"},
		{"ftp", FileAddSpec{SourceEndpoint: ep("ftp://host/a.iso")}, `scheme "ftp"`},
		{"no scheme", FileAddSpec{SourceEndpoint: ep("relative/a.iso")}, "no scheme"},
		{"file relative", FileAddSpec{SourceEndpoint: ep("file:relative/a.iso")}, "absolute"},
		{"file with host", FileAddSpec{SourceEndpoint: ep("file://relative/a.iso")}, "absolute"},
		{"no host", FileAddSpec{SourceEndpoint: ep("https:///a.iso")}, "no host"},
		{"unparseable", FileAddSpec{SourceEndpoint: ep("http://h/%zz")}, "cannot be parsed"},
		{"thumbprint not hex", FileAddSpec{SourceEndpoint: &TransferEndpoint{URI: "https://h/a", SSLCertificateThumbprint: "zz:zz"}}, "thumbprint"},
		{"thumbprint length", FileAddSpec{SourceEndpoint: &TransferEndpoint{URI: "https://h/a", SSLCertificateThumbprint: "ab:cd:ef"}}, "thumbprint"},
		{"certificate not PEM", FileAddSpec{SourceEndpoint: &TransferEndpoint{URI: "https://h/a", SSLCertificate: "hello"}}, "ssl_certificate"},
		{"certificate garbage", FileAddSpec{SourceEndpoint: &TransferEndpoint{URI: "https://h/a", SSLCertificate: strings.Replace(pemOK, "MII", "XXX", 1)}}, "ssl_certificate"},
		{"checksum algorithm", FileAddSpec{SourceEndpoint: ep("https://h/a"), ChecksumInfo: &ChecksumInfo{Algorithm: "CRC32", Checksum: "00"}}, "algorithm"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.spec.Name, c.spec.SourceType = "f.iso", SourcePull
			_, err := e.m.AddFile(e.ctx, e.s, c.spec)
			wantKind(t, err, KindInvalidArgument)
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
	if files, err := e.m.ListSessionFiles(e.ctx, e.s); err != nil || len(files) != 0 {
		t.Fatalf("refused adds left files: %+v, %v", files, err)
	}
	// A valid spec on a session that is not ACTIVE is refused too.
	e.must(e.m.CancelUpdateSession(e.ctx, e.s))
	_, err := e.m.AddFile(e.ctx, e.s, FileAddSpec{Name: "f.iso", SourceType: SourcePull, SourceEndpoint: ep("https://h/a")})
	wantKind(t, err, KindNotAllowedInCurrentState)
}

// TestPullHTTPSThumbprints: SHA-1 and SHA-256, with and without colons,
// any case, pin the server; a wrong one fails the file.
func TestPullHTTPSThumbprints(t *testing.T) {
	t.Parallel()
	const content = "bytes over https"
	srv := serve(t, content)
	s1, s256 := thumbprints(srv.Certificate())
	e := newPullEnv(t, 0)
	e.m.endpoints = testEndpoints{}
	ok := map[string]string{
		"sha1.iso":         s1,
		"sha1-colons.iso":  strings.ToUpper(withColons(s1)),
		"sha256.iso":       strings.ToUpper(s256),
		"sha256-colon.iso": withColons(s256),
	}
	for name, tp := range ok {
		info := e.addPull(name, TransferEndpoint{URI: srv.URL + "/" + name, SSLCertificateThumbprint: tp})
		if info.SourceType != SourcePull || info.SourceEndpoint == nil || info.SourceEndpoint.SSLCertificateThumbprint != tp || info.UploadEndpoint != nil {
			t.Errorf("add returned %+v", info)
		}
	}
	wrong := strings.Repeat("ab", 20)
	e.addPull("wrong.iso", TransferEndpoint{URI: srv.URL + "/w", SSLCertificateThumbprint: wrong})
	for name := range ok {
		f := e.settled(name)
		wantReady(t, f, content)
		if f.SourceEndpoint == nil || f.SourceEndpoint.URI != srv.URL+"/"+name || f.UploadEndpoint != nil {
			t.Errorf("%s: endpoints %+v %+v", name, f.SourceEndpoint, f.UploadEndpoint)
		}
	}
	wantError(t, e.settled("wrong.iso"), "thumbprint mismatch", strings.ToUpper(withColons(s1)))
	wantKind(t, e.m.CompleteUpdateSession(e.ctx, e.s), KindNotAllowedInCurrentState)
	e.must(e.m.RemoveSessionFile(e.ctx, e.s, "wrong.iso"))
	e.must(e.m.CompleteUpdateSession(e.ctx, e.s))
	for name := range ok {
		if got := e.read(e.item, name); got != content {
			t.Errorf("%s = %q", name, got)
		}
	}
}

type testEndpoints struct{}

func (testEndpoints) UploadURI(s, f string) string   { return "https://clfs/up/" + s + "/" + f }
func (testEndpoints) DownloadURI(s, f string) string { return "https://clfs/down/" + s + "/" + f }

// TestPullTrust: a PEM certificate pins the server (and the thumbprint is
// then ignored); without either the chain must verify.
func TestPullTrust(t *testing.T) {
	t.Parallel()
	srv := serve(t, "shared cert")
	other := newCert(t)
	otherSrv := serveWithCert(t, other, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("other cert")) }))
	otherX509, err := x509.ParseCertificate(other.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	e := newPullEnv(t, 0)
	e.addPull("pem.iso", TransferEndpoint{URI: srv.URL + "/a", SSLCertificate: CertificatePEM(srv.Certificate())})
	e.addPull("pem-wrong-thumb.iso", TransferEndpoint{URI: srv.URL + "/a", SSLCertificate: CertificatePEM(srv.Certificate()), SSLCertificateThumbprint: strings.Repeat("00", 20)})
	e.addPull("pem-other.iso", TransferEndpoint{URI: otherSrv.URL + "/a", SSLCertificate: CertificatePEM(srv.Certificate())})
	e.addPull("bundle.iso", TransferEndpoint{URI: otherSrv.URL + "/a", SSLCertificate: CertificatePEM(srv.Certificate()) + CertificatePEM(otherX509)})
	e.addPull("untrusted.iso", TransferEndpoint{URI: otherSrv.URL + "/a"})
	wantReady(t, e.settled("pem.iso"), "shared cert")
	wantReady(t, e.settled("pem-wrong-thumb.iso"), "shared cert")
	wantError(t, e.settled("pem-other.iso"), "not the ssl_certificate")
	wantReady(t, e.settled("bundle.iso"), "other cert")
	wantError(t, e.settled("untrusted.iso"), "not trusted", "unknown authority")

	// Normal validation accepts a chain to a trusted root.
	roots := x509.NewCertPool()
	roots.AddCert(otherX509)
	e.m.rootCAs = roots
	e.addPull("trusted.iso", TransferEndpoint{URI: otherSrv.URL + "/a"})
	wantReady(t, e.settled("trusted.iso"), "other cert")
	// ...for the right host only: the name is checked.
	e.addPull("wrong-host.iso", TransferEndpoint{URI: strings.Replace(otherSrv.URL, "127.0.0.1", "localhost", 1) + "/a"})
	wantError(t, e.settled("wrong-host.iso"), "not trusted")
}

func TestPullHTTPAndFile(t *testing.T) {
	t.Parallel()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("plain http"))
		case "/short":
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("only some"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(plain.Close)
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL
	refused.Close()
	src := filepath.Join(t.TempDir(), "src.iso")
	if err := os.WriteFile(src, []byte("from a local file"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newPullEnv(t, 0)
	e.addPull("http.iso", TransferEndpoint{URI: plain.URL + "/ok"})
	e.addPull("file.iso", TransferEndpoint{URI: "file://" + src})
	e.addPull("missing-file.iso", TransferEndpoint{URI: "file://" + src + ".gone"})
	e.addPull("dir.iso", TransferEndpoint{URI: "file://" + filepath.Dir(src)})
	e.addPull("404.iso", TransferEndpoint{URI: plain.URL + "/nope"})
	e.addPull("short.iso", TransferEndpoint{URI: plain.URL + "/short"})
	e.addPull("refused.iso", TransferEndpoint{URI: refusedURL + "/ok"})
	wantReady(t, e.settled("http.iso"), "plain http")
	wantReady(t, e.settled("file.iso"), "from a local file")
	wantError(t, e.settled("missing-file.iso"), "no such file")
	wantError(t, e.settled("dir.iso"), "not a regular file")
	wantError(t, e.settled("404.iso"), "404")
	wantError(t, e.settled("short.iso"), "unexpected EOF")
	wantError(t, e.settled("refused.iso"), "refused")
}

// TestPullVerdicts: size and checksum are checked as for PUSH, whether
// the bytes are staged in memory or on disk.
func TestPullVerdicts(t *testing.T) {
	t.Parallel()
	for _, limit := range []int64{0, -1} {
		t.Run(fmt.Sprintf("inline=%d", limit), func(t *testing.T) {
			t.Parallel()
			const content = "checked content"
			srv := serve(t, content)
			tp, _ := thumbprints(srv.Certificate())
			sum := sha256.Sum256([]byte(content))
			s1 := sha1.Sum([]byte(content))
			e := newPullEnv(t, limit)
			add := func(name string, size *int64, c *ChecksumInfo) {
				_, err := e.m.AddFile(e.ctx, e.s, FileAddSpec{Name: name, SourceType: SourcePull, Size: size, ChecksumInfo: c,
					SourceEndpoint: &TransferEndpoint{URI: srv.URL + "/x", SSLCertificateThumbprint: tp}})
				e.must(err)
			}
			good, bad := int64(len(content)), int64(len(content)+1)
			add("size-ok", &good, nil)
			add("size-bad", &bad, nil)
			add("sha256-ok", nil, &ChecksumInfo{Algorithm: AlgSHA256, Checksum: strings.ToUpper(hex.EncodeToString(sum[:]))})
			add("sha1-ok", nil, &ChecksumInfo{Checksum: hex.EncodeToString(s1[:])})
			add("sha1-bad", nil, &ChecksumInfo{Algorithm: AlgSHA1, Checksum: strings.Repeat("0", 40)})
			wantReady(t, e.settled("size-ok"), content)
			wantError(t, e.settled("size-bad"), "size mismatch")
			wantReady(t, e.settled("sha256-ok"), content)
			wantReady(t, e.settled("sha1-ok"), content)
			wantError(t, e.settled("sha1-bad"), "checksum mismatch")
			e.must(e.m.RemoveSessionFile(e.ctx, e.s, "size-bad"))
			e.must(e.m.RemoveSessionFile(e.ctx, e.s, "sha1-bad"))
			e.must(e.m.CompleteUpdateSession(e.ctx, e.s))
			files, err := e.m.ListFiles(e.ctx, e.item)
			e.must(err)
			if len(files) != 3 {
				t.Fatalf("files %+v", files)
			}
			for _, f := range files {
				if f.Size != good || f.ChecksumInfo.Checksum != hex.EncodeToString(sum[:]) {
					t.Errorf("committed %+v", f)
				}
			}
		})
	}
}

func TestPullRedirects(t *testing.T) {
	t.Parallel()
	other := serveWithCert(t, newCert(t), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("elsewhere")) }))
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("downgraded")) }))
	t.Cleanup(plain.Close)
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hop":
			http.Redirect(w, r, "/final", http.StatusFound)
		case "/final":
			w.Write([]byte("after a hop"))
		case "/other":
			http.Redirect(w, r, other.URL+"/x", http.StatusFound)
		case "/plain":
			http.Redirect(w, r, plain.URL+"/x", http.StatusFound)
		default: // a loop
			http.Redirect(w, r, r.URL.Path+"x", http.StatusFound)
		}
	}))
	t.Cleanup(srv.Close)
	tp, _ := thumbprints(srv.Certificate())
	e := newPullEnv(t, 0)
	for _, p := range []string{"hop", "other", "plain", "loop"} {
		e.addPull(p, TransferEndpoint{URI: srv.URL + "/" + p, SSLCertificateThumbprint: tp})
	}
	wantReady(t, e.settled("hop"), "after a hop")
	wantError(t, e.settled("other"), "thumbprint mismatch")
	wantError(t, e.settled("plain"), "refusing redirect from https")
	wantError(t, e.settled("loop"), "redirects")
}

// stallServer sends head, then waits: for more (then sends tail), for
// fail (then ends the body short), or for the client to go away.
type stallServer struct {
	*httptest.Server
	head, tail []byte
	more, fail chan struct{}
	started    chan struct{} // one receive per request that sent its head
	gone       chan struct{} // one receive per client that went away
	stop       chan struct{}
}

func newStallServer(t *testing.T, head, tail int) *stallServer {
	t.Helper()
	s := &stallServer{
		head: []byte(strings.Repeat("h", head)), tail: []byte(strings.Repeat("t", tail)),
		more: make(chan struct{}, 8), fail: make(chan struct{}, 8),
		started: make(chan struct{}, 8), gone: make(chan struct{}, 8), stop: make(chan struct{}),
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(head+tail))
		w.Write(s.head)
		w.(http.Flusher).Flush()
		s.started <- struct{}{}
		select {
		case <-s.more:
			w.Write(s.tail)
		case <-s.fail:
		case <-r.Context().Done():
			s.gone <- struct{}{}
		case <-s.stop:
		}
	}))
	t.Cleanup(s.Server.Close)
	t.Cleanup(func() { close(s.stop) }) // runs first: handlers return
	return s
}

func recv(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// pullGoroutines counts goroutines running a pull, in every Manager.
func pullGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "sessionmgr.(*Manager).runPull(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

func (e *pullEnv) staging() string {
	return stagingDir(filepath.Join(e.home, "storage"), e.s)
}

// TestPullCancelMidBody: bytes_transferred grows while the body arrives,
// bytes keep the session alive, and cancel aborts the pull: CANCELED, no
// staging, the goroutine gone, the server sees the client leave.
// Not parallel: it counts goroutines.
func TestPullCancelMidBody(t *testing.T) {
	srv := newStallServer(t, 200<<10, 100<<10)
	e := newPullEnv(t, -1)
	info := e.addPull("big.iso", TransferEndpoint{URI: srv.URL + "/big"})
	if info.Status != TransferTransferring {
		t.Fatalf("after add: %+v", info)
	}
	recv(t, srv.started, "the body to start")
	e.waitTransferred("big.iso", int64(len(srv.head)))
	if _, err := os.Stat(e.staging()); err != nil {
		t.Fatalf("no staging while pulling: %v", err)
	}
	// Bytes flowing at +4m keep the session past its first deadline.
	e.clock.Advance(4 * time.Minute)
	srv.more <- struct{}{}
	eventually(t, "the tail to arrive", func() bool {
		s, err := e.m.GetUpdateSession(e.ctx, e.s)
		e.must(err)
		return s.BytesTransferred == int64(len(srv.head)+len(srv.tail))
	})
	f := e.settled("big.iso")
	wantReady(t, f, string(srv.head)+string(srv.tail))
	e.clock.Advance(2 * time.Minute)
	_, err := e.m.ExpireDue(e.ctx)
	e.must(err)
	if got := e.updateState(e.s); got != StateActive {
		t.Fatalf("session %s although bytes flowed 2 minutes ago", got)
	}

	// Now a pull that stalls, and cancel.
	e.addPull("stalled.iso", TransferEndpoint{URI: srv.URL + "/stalled"})
	recv(t, srv.started, "the second body to start")
	if pullGoroutines() != 1 {
		t.Fatalf("%d pull goroutines, want 1", pullGoroutines())
	}
	e.must(e.m.CancelUpdateSession(e.ctx, e.s))
	recv(t, srv.gone, "the server to see the client leave")
	eventually(t, "the pull goroutine to end", func() bool { return pullGoroutines() == 0 })
	if got := e.updateState(e.s); got != StateCanceled {
		t.Fatalf("state %s after cancel", got)
	}
	if _, err := os.Stat(e.staging()); !os.IsNotExist(err) {
		t.Fatalf("staging left after cancel: %v", err)
	}
}

// TestPullAbortedByItsName: a re-add or remove of the name stops its
// pull; the new pull's result is not clobbered by the old one.
func TestPullAbortedByItsName(t *testing.T) {
	t.Parallel()
	srv := newStallServer(t, 100<<10, 10)
	fast := serve(t, "the new content")
	tp, _ := thumbprints(fast.Certificate())
	e := newPullEnv(t, -1)

	e.addPull("a.iso", TransferEndpoint{URI: srv.URL + "/a"})
	recv(t, srv.started, "the pull to start")
	e.addPull("a.iso", TransferEndpoint{URI: fast.URL + "/a", SSLCertificateThumbprint: tp})
	recv(t, srv.gone, "the re-add to abort the first pull")
	wantReady(t, e.settled("a.iso"), "the new content")

	e.addPull("b.iso", TransferEndpoint{URI: srv.URL + "/b"})
	recv(t, srv.started, "the pull to start")
	e.must(e.m.RemoveSessionFile(e.ctx, e.s, "b.iso"))
	recv(t, srv.gone, "remove to abort the pull")
	eventually(t, "pulls to end", func() bool { return e.m.pullsRunning.Load() == 0 })
	if _, err := e.m.GetSessionFile(e.ctx, e.s, "b.iso"); KindOf(err) != KindInvalidArgument {
		t.Fatalf("removed file: %v", err)
	}

	e.addPull("c.iso", TransferEndpoint{URI: srv.URL + "/c"})
	recv(t, srv.started, "the pull to start")
	_, err := e.m.AddFile(e.ctx, e.s, FileAddSpec{Name: "c.iso", SourceType: SourcePush})
	e.must(err)
	recv(t, srv.gone, "a PUSH re-add to abort the pull")
	eventually(t, "pulls to end", func() bool { return e.m.pullsRunning.Load() == 0 })
	f, err := e.m.GetSessionFile(e.ctx, e.s, "c.iso")
	e.must(err)
	if f.Status != TransferWaiting || f.SourceType != SourcePush || f.SourceEndpoint != nil {
		t.Fatalf("re-added as PUSH: %+v", f)
	}
	// Only a.iso's staging is left (inline staging is off): the aborted
	// pulls of b.iso and c.iso, and a.iso's first, left none.
	entries, err := os.ReadDir(e.staging())
	e.must(err)
	if len(entries) != 1 {
		t.Fatalf("staging holds %d files, want a.iso's only", len(entries))
	}
	// An upload to a PULL file is refused.
	e.addPull("d.iso", TransferEndpoint{URI: fast.URL + "/d", SSLCertificateThumbprint: tp})
	_, err = e.m.OpenUpload(e.ctx, e.s, "d.iso", UploadOptions{})
	wantKind(t, err, KindInvalidArgument)
	e.settled("d.iso")
}

// TestPullExpiryAborts: a pull that stalls is no activity; expiry
// cancels the session and aborts the pull.
func TestPullExpiryAborts(t *testing.T) {
	t.Parallel()
	srv := newStallServer(t, 100<<10, 10)
	e := newPullEnv(t, -1)
	e.addPull("a.iso", TransferEndpoint{URI: srv.URL + "/a"})
	recv(t, srv.started, "the pull to start")
	e.waitTransferred("a.iso", int64(len(srv.head)))
	e.clock.Advance(testTimeout + time.Second)
	n, err := e.m.ExpireDue(e.ctx)
	e.must(err)
	if n != 1 || e.updateState(e.s) != StateCanceled {
		t.Fatalf("expired %d, state %s", n, e.updateState(e.s))
	}
	recv(t, srv.gone, "expiry to abort the pull")
	eventually(t, "pulls to end", func() bool { return e.m.pullsRunning.Load() == 0 })
	if _, err := os.Stat(e.staging()); !os.IsNotExist(err) {
		t.Fatalf("staging left after expiry: %v", err)
	}
}

// TestPullCompleteWaits: complete returns while the pull runs, the session
// stays ACTIVE and takes no changes, and commits itself when the pull
// ends: content visible, content_version bumped, subscribers told.
func TestPullCompleteWaits(t *testing.T) {
	t.Parallel()
	srv := newStallServer(t, 100<<10, 5)
	e := newPullEnv(t, 0)
	e.upload(e.s, "old.txt", "old")
	e.must(e.m.CompleteUpdateSession(e.ctx, e.s))
	e.s = e.updateSession(e.item)
	it, err := e.m.GetItem(e.ctx, e.item)
	e.must(err)
	versionBefore := it.ContentVersion
	var mu sync.Mutex
	var changes []Change
	e.m.Subscribe(func(c Change) {
		mu.Lock()
		changes = append(changes, c)
		mu.Unlock()
	})
	e.upload(e.s, "pushed.txt", "pushed")
	e.addPull("pulled.iso", TransferEndpoint{URI: srv.URL + "/a"})
	recv(t, srv.started, "the pull to start")

	e.must(e.m.CompleteUpdateSession(e.ctx, e.s))
	if got := e.updateState(e.s); got != StateActive {
		t.Fatalf("state %s while the pull runs", got)
	}
	_, err = e.m.AddFile(e.ctx, e.s, FileAddSpec{Name: "x", SourceType: SourcePush})
	wantKind(t, err, KindNotAllowedInCurrentState)
	wantKind(t, e.m.RemoveSessionFile(e.ctx, e.s, "old.txt"), KindNotAllowedInCurrentState)
	err = e.m.CompleteUpdateSession(e.ctx, e.s)
	wantKind(t, err, KindNotAllowedInCurrentState)
	if !strings.Contains(err.Error(), "completing") {
		t.Errorf("second complete: %v", err)
	}
	e.must(e.m.KeepAliveUpdateSession(e.ctx, e.s, nil))
	if files, err := e.m.ListFiles(e.ctx, e.item); err != nil || len(files) != 1 {
		t.Fatalf("item changed before the pull ended: %+v, %v", files, err)
	}
	mu.Lock()
	before := len(changes)
	mu.Unlock()

	srv.more <- struct{}{}
	eventually(t, "the session to complete", func() bool { return e.updateState(e.s) != StateActive })
	if got := e.updateState(e.s); got != StateDone {
		s, _ := e.m.GetUpdateSession(e.ctx, e.s)
		t.Fatalf("state %s (%+v) after the pull", got, s.ErrorMessage)
	}
	want := string(srv.head) + string(srv.tail)
	if got := e.read(e.item, "pulled.iso"); got != want {
		t.Fatalf("pulled content %d bytes, want %d", len(got), len(want))
	}
	if got := e.read(e.item, "pushed.txt"); got != "pushed" {
		t.Fatalf("pushed content %q", got)
	}
	f, err := e.m.GetFile(e.ctx, e.item, "pulled.iso")
	e.must(err)
	sum := sha256.Sum256([]byte(want))
	if f.Size != int64(len(want)) || f.ChecksumInfo.Checksum != hex.EncodeToString(sum[:]) {
		t.Fatalf("committed %+v", f)
	}
	it, err = e.m.GetItem(e.ctx, e.item)
	e.must(err)
	if n, _ := strconv.Atoi(versionBefore); it.ContentVersion != strconv.Itoa(n+1) {
		t.Fatalf("content_version %s, was %s", it.ContentVersion, versionBefore)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != before+1 || changes[before].Item != "iso" || !strings.Contains(strings.Join(changes[before].Files, ","), "pulled.iso") {
		t.Fatalf("changes %+v (before %d)", changes, before)
	}
}

// TestPullFailsPendingComplete: a pull that fails after complete puts the
// session in ERROR naming the file; a pull already failed makes complete
// fail at once; cancel aborts a pending complete.
func TestPullFailsPendingComplete(t *testing.T) {
	t.Parallel()
	srv := newStallServer(t, 100<<10, 5)
	e := newPullEnv(t, -1)
	e.addPull("a.iso", TransferEndpoint{URI: srv.URL + "/a"})
	recv(t, srv.started, "the pull to start")
	e.must(e.m.CompleteUpdateSession(e.ctx, e.s))
	srv.fail <- struct{}{}
	eventually(t, "the session to end", func() bool { return e.updateState(e.s) != StateActive })
	s, err := e.m.GetUpdateSession(e.ctx, e.s)
	e.must(err)
	if s.State != StateFailed || s.ErrorMessage == nil || !strings.Contains(s.ErrorMessage.DefaultMessage, `"a.iso"`) {
		t.Fatalf("session %+v %+v", s, s.ErrorMessage)
	}
	if files, _ := e.m.ListFiles(e.ctx, e.item); len(files) != 0 {
		t.Fatalf("item changed: %+v", files)
	}
	eventually(t, "pulls to end", func() bool { return e.m.pullsRunning.Load() == 0 })
	if _, err := os.Stat(e.staging()); !os.IsNotExist(err) {
		t.Fatalf("staging left: %v", err)
	}

	// Already failed: complete refuses, the session stays ACTIVE.
	e.s = e.updateSession(e.item)
	e.addPull("b.iso", TransferEndpoint{URI: srv.URL + "/b"})
	recv(t, srv.started, "the pull to start")
	srv.fail <- struct{}{}
	wantError(t, e.settled("b.iso"), "unexpected EOF")
	wantKind(t, e.m.CompleteUpdateSession(e.ctx, e.s), KindNotAllowedInCurrentState)
	if got := e.updateState(e.s); got != StateActive {
		t.Fatalf("state %s", got)
	}

	// Cancel while a complete is pending.
	e.addPull("b.iso", TransferEndpoint{URI: srv.URL + "/b"})
	recv(t, srv.started, "the pull to start")
	e.must(e.m.CompleteUpdateSession(e.ctx, e.s))
	e.must(e.m.CancelUpdateSession(e.ctx, e.s))
	recv(t, srv.gone, "cancel to abort the pull")
	eventually(t, "pulls to end", func() bool { return e.m.pullsRunning.Load() == 0 })
	if got := e.updateState(e.s); got != StateCanceled {
		t.Fatalf("state %s", got)
	}
	if files, _ := e.m.ListFiles(e.ctx, e.item); len(files) != 0 {
		t.Fatalf("item changed: %+v", files)
	}
}

// TestPullCloseAndRecover: Close stops running pulls and waits for them;
// after a restart the interrupted file is ERROR, and a session whose
// complete was pending is ERROR saying so. Not parallel: it counts
// goroutines.
func TestPullCloseAndRecover(t *testing.T) {
	srv := newStallServer(t, 100<<10, 5)
	e := newPullEnv(t, -1)
	s2item := e.testEnv.item(e.m.mustLibraryOf(t, e.item), "other")
	s2 := e.updateSession(s2item)
	e.addPull("a.iso", TransferEndpoint{URI: srv.URL + "/a"})
	recv(t, srv.started, "the pull to start")
	_, err := e.m.AddFile(e.ctx, s2, FileAddSpec{Name: "b.iso", SourceType: SourcePull, SourceEndpoint: &TransferEndpoint{URI: srv.URL + "/b"}})
	e.must(err)
	recv(t, srv.started, "the pull to start")
	e.must(e.m.CompleteUpdateSession(e.ctx, s2))

	e.m.afterPullAbort = func() { time.Sleep(100 * time.Millisecond) }
	e.close()
	if n := pullGoroutines(); n != 0 {
		t.Fatalf("%d pull goroutines outlived Close", n)
	}
	recv(t, srv.gone, "Close to abort a pull")
	recv(t, srv.gone, "Close to abort a pull")

	e.open()
	f, err := e.m.GetSessionFile(e.ctx, e.s, "a.iso")
	e.must(err)
	if f.Status != TransferError || f.ErrorMessage == nil || !strings.Contains(f.ErrorMessage.DefaultMessage, "interrupted") {
		t.Fatalf("interrupted pull after restart: %+v", f)
	}
	if got := e.updateState(e.s); got != StateActive {
		t.Fatalf("session %s after restart", got)
	}
	s, err := e.m.GetUpdateSession(e.ctx, s2)
	e.must(err)
	if s.State != StateFailed || s.ErrorMessage == nil || s.ErrorMessage.DefaultMessage != pendingCompleteLostMessage {
		t.Fatalf("pending complete after restart: %+v %+v", s, s.ErrorMessage)
	}
	if _, err := os.Stat(stagingDir(filepath.Join(e.home, "storage"), s2)); !os.IsNotExist(err) {
		t.Fatalf("staging of the failed session left: %v", err)
	}
	// The item takes a new session.
	e.updateSession(s2item)
}

func (m *Manager) mustLibraryOf(t *testing.T, item string) string {
	t.Helper()
	it, err := m.GetItem(t.Context(), item)
	if err != nil {
		t.Fatal(err)
	}
	return it.LibraryID
}

func TestProbe(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("x"))
		case "/auth":
			w.WriteHeader(http.StatusUnauthorized)
		case "/boom":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	stop := make(chan struct{})
	refused := httptest.NewServer(http.NotFoundHandler())
	refused.Close()
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cert := srv.Certificate()
	tp1, _ := thumbprints(cert)
	e := newTestEnv(t)
	for _, c := range []struct {
		name string
		ep   TransferEndpoint
		want ProbeStatus
	}{
		{"ok", TransferEndpoint{URI: srv.URL + "/ok", SSLCertificateThumbprint: tp1}, ProbeSuccess},
		{"untrusted", TransferEndpoint{URI: srv.URL + "/ok"}, ProbeCertificateError},
		{"wrong thumbprint", TransferEndpoint{URI: srv.URL + "/ok", SSLCertificateThumbprint: strings.Repeat("1", 64)}, ProbeCertificateError},
		{"not found", TransferEndpoint{URI: srv.URL + "/nope", SSLCertificate: CertificatePEM(cert)}, ProbeResourceNotFound},
		{"auth", TransferEndpoint{URI: srv.URL + "/auth", SSLCertificate: CertificatePEM(cert)}, ProbeInvalidCredentials},
		{"server error", TransferEndpoint{URI: srv.URL + "/boom", SSLCertificate: CertificatePEM(cert)}, ProbeUnknownError},
		{"refused", TransferEndpoint{URI: refused.URL}, ProbeUnknownError},
		{"ds", TransferEndpoint{URI: "ds:///vmfs/volumes/x/y"}, ProbeInvalidURL},
		{"garbage", TransferEndpoint{URI: "::"}, ProbeInvalidURL},
		{"no host", TransferEndpoint{URI: "nonexistent.invalid"}, ProbeInvalidURL},
		{"unknown host", TransferEndpoint{URI: "http://nonexistent.invalid/x"}, ProbeHostNotFound},
		{"file", TransferEndpoint{URI: "file://" + src}, ProbeSuccess},
		{"missing file", TransferEndpoint{URI: "file://" + src + "x"}, ProbeResourceNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := e.m.ProbeTransferEndpoint(e.ctx, c.ep)
			e.must(err)
			if res.Status != c.want {
				t.Fatalf("status %s (%+v), want %s", res.Status, res.ErrorMessages, c.want)
			}
			if (c.want == ProbeSuccess) != (len(res.ErrorMessages) == 0) {
				t.Errorf("error messages %+v with %s", res.ErrorMessages, res.Status)
			}
			if strings.HasPrefix(c.ep.URI, "https:") {
				if res.SSLThumbprint != ThumbprintSHA1(cert) || !strings.Contains(res.SSLThumbprint, ":") || res.SSLThumbprint != strings.ToUpper(withColons(tp1)) {
					t.Errorf("thumbprint %q, want %q", res.SSLThumbprint, withColons(tp1))
				}
				b, _ := pem.Decode([]byte(res.SSLCertificate))
				if b == nil || !strings.EqualFold(hex.EncodeToString(b.Bytes), hex.EncodeToString(cert.Raw)) {
					t.Errorf("certificate %q", res.SSLCertificate)
				}
			} else if res.SSLThumbprint != "" || res.SSLCertificate != "" {
				t.Errorf("certificate reported for %s: %+v", c.ep.URI, res)
			}
		})
	}
	// A server that sends no headers in time.
	mute := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(mute.Close)
	t.Cleanup(func() { close(stop) })
	ctx, cancel := context.WithTimeout(e.ctx, 200*time.Millisecond)
	defer cancel()
	res, err := e.m.ProbeTransferEndpoint(ctx, TransferEndpoint{URI: mute.URL})
	e.must(err)
	if res.Status != ProbeTimedOut {
		t.Fatalf("mute server: %+v", res)
	}
	_, err = e.m.ProbeTransferEndpoint(e.ctx, TransferEndpoint{URI: srv.URL, SSLCertificateThumbprint: "xyz"})
	wantKind(t, err, KindInvalidArgument)

	// JSON names.
	b, err := json.Marshal(ProbeResult{Status: ProbeSuccess, SSLThumbprint: "AA", SSLCertificate: "P", ErrorMessages: []Message{}})
	e.must(err)
	if string(b) != `{"status":"SUCCESS","ssl_thumbprint":"AA","ssl_certificate":"P","error_messages":[]}` {
		t.Fatalf("probe result JSON %s", b)
	}
	b, err = json.Marshal(UpdateSessionFile{Name: "n", SourceType: SourcePull, SourceEndpoint: &TransferEndpoint{URI: "https://h/n", SSLCertificateThumbprint: "AB", SSLCertificate: "P"}, Status: TransferTransferring})
	e.must(err)
	if !strings.Contains(string(b), `"source_endpoint":{"uri":"https://h/n","ssl_certificate_thumbprint":"AB","ssl_certificate":"P"}`) || strings.Contains(string(b), "upload_endpoint") {
		t.Fatalf("session file JSON %s", b)
	}
}
