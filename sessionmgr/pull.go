package sessionmgr

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"clfs/meta"
)

// Server-side PULL imports (spec §7.1, §7.5 add and probe).
//
// A PULL file is fetched by the server from its source endpoint (http,
// https or an absolute file:// path) on a goroutine of its own, into a
// StagedFile exactly as a PUSH upload is: the same size and checksum
// verdict at Finish, the same inline staging of small files. While bytes
// arrive the file is TRANSFERRING and bytes_transferred grows; every
// write counts as activity on the session (spec §12 #5), so a pull that
// stalls lets the session expire, and expiry aborts it.
//
// A pull is aborted by cancelling its context: cancel, fail, expiry,
// delete of the item, a re-add or remove of the name, and Close. The
// goroutine then discards its staged bytes and writes nothing: whoever
// aborted it owns the file's record. A pull that fails on its own (the
// server refused, the certificate did not match, the body was short)
// records the file ERROR with a message naming the file and the cause.
//
// TLS (spec §5.1) is checked by hand on every connection, redirects
// included: a thumbprint (SHA-1 or SHA-256 of the leaf's DER) or a PEM
// certificate pins the leaf and nothing else is checked; otherwise the
// chain must verify against the system roots for the host dialled.

// maxPullRedirects bounds the redirects a pull or probe follows.
const maxPullRedirects = 5

// pullDialTimeout bounds connecting and the TLS handshake; a server that
// accepts and then stalls is left to the session's expiry.
const pullDialTimeout = 30 * time.Second

// probeTimeout bounds a probe whose caller set no deadline.
const probeTimeout = 30 * time.Second

// pull is one running fetch of a PULL file.
type pull struct {
	ls        *liveSession
	sessionID uint64
	name      string
	staging   string // the record's staging path: its identity
	src       *pullSource
	sf        *StagedFile
	cancel    context.CancelFunc
}

// pullSource is a validated source endpoint.
type pullSource struct {
	ep   TransferEndpoint
	u    *url.URL
	rule tlsRule
}

// parsePullSource validates a PULL file's source endpoint: InvalidArgument
// for a missing endpoint, a URI that is not http, https or file:///abs,
// or a malformed thumbprint or certificate.
func parsePullSource(file string, ep *TransferEndpoint) (*pullSource, error) {
	if ep == nil || ep.URI == "" {
		return nil, errorf(KindInvalidArgument, "file %q: source_type PULL needs a source_endpoint with a uri", file)
	}
	u, err := parseSourceURI(ep.URI)
	if err != nil {
		return nil, errorf(KindInvalidArgument, "file %q: %v", file, err)
	}
	rule, err := parseTLSRule(*ep)
	if err != nil {
		return nil, errorf(KindInvalidArgument, "file %q: %v", file, err)
	}
	return &pullSource{ep: *ep, u: u, rule: rule}, nil
}

// parseSourceURI accepts http and https URLs with a host and file URLs of
// an absolute local path (file:///abs/path, file://localhost/abs/path).
func parseSourceURI(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("source uri %q cannot be parsed: %v", raw, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" || u.Opaque != "" {
			return nil, fmt.Errorf("source uri %q has no host", u.Redacted())
		}
	case "file":
		if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") || !path.IsAbs(u.Path) {
			return nil, fmt.Errorf("source uri %q is not a file URI of an absolute path (file:///abs/path)", raw)
		}
	case "ds":
		return nil, fmt.Errorf("source uri %q: datastore (ds) URIs are not supported here; use http, https or file", raw)
	case "":
		return nil, fmt.Errorf("source uri %q has no scheme (want http, https or file)", u.Redacted())
	default:
		return nil, fmt.Errorf("source uri %q: scheme %q is not supported (want http, https or file)", u.Redacted(), u.Scheme)
	}
	return u, nil
}

// record is the endpoint as the file's record keeps it.
func (src *pullSource) record() *meta.TransferEndpointRecord {
	return &meta.TransferEndpointRecord{URI: src.ep.URI, Thumbprint: src.ep.SSLCertificateThumbprint, CertificatePEM: src.ep.SSLCertificate}
}

func endpointOf(r *meta.TransferEndpointRecord) *TransferEndpoint {
	if r == nil {
		return nil
	}
	return &TransferEndpoint{URI: r.URI, SSLCertificateThumbprint: r.Thumbprint, SSLCertificate: r.CertificatePEM}
}

// ---- TLS

// tlsRule is how the peer of an https connection is trusted.
type tlsRule struct {
	thumb  []byte              // SHA-1 (20 bytes) or SHA-256 (32 bytes) of the leaf's DER
	pinned []*x509.Certificate // leaf must be one of these
	roots  *x509.CertPool      // for chain validation; nil = system roots
}

func parseTLSRule(ep TransferEndpoint) (tlsRule, error) {
	var r tlsRule
	if ep.SSLCertificate != "" {
		rest := []byte(ep.SSLCertificate)
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return r, fmt.Errorf("ssl_certificate: %v", err)
			}
			r.pinned = append(r.pinned, c)
		}
		if len(r.pinned) == 0 {
			return r, errors.New("ssl_certificate holds no PEM CERTIFICATE block")
		}
		return r, nil // the thumbprint is then not checked (spec §5.1)
	}
	if ep.SSLCertificateThumbprint != "" {
		t, err := parseThumbprint(ep.SSLCertificateThumbprint)
		if err != nil {
			return r, err
		}
		r.thumb = t
	}
	return r, nil
}

// parseThumbprint accepts hex in any case, with or without ':' between
// bytes; its length says the algorithm: SHA-1 or SHA-256.
func parseThumbprint(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || (len(b) != sha1.Size && len(b) != sha256.Size) {
		return nil, fmt.Errorf("ssl_certificate_thumbprint %q is not a SHA-1 or SHA-256 digest in hex", s)
	}
	return b, nil
}

// ThumbprintSHA1 is the SHA-1 of a certificate's DER as vCenter prints
// thumbprints: colon-separated upper-case hex.
func ThumbprintSHA1(cert *x509.Certificate) string {
	sum := sha1.Sum(cert.Raw)
	return formatThumbprint(sum[:])
}

// ThumbprintSHA256 is ThumbprintSHA1 with SHA-256.
func ThumbprintSHA256(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return formatThumbprint(sum[:])
}

func formatThumbprint(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}

// CertificatePEM is a certificate in PEM.
func CertificatePEM(cert *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
}

// certificateError is a peer certificate the rule refused.
type certificateError struct{ err error }

func (e *certificateError) Error() string { return "server certificate not trusted: " + e.err.Error() }
func (e *certificateError) Unwrap() error { return e.err }

// verify applies the rule to the chain a server at host presented.
func (r *tlsRule) verify(host string, chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return &certificateError{errors.New("no certificate presented")}
	}
	leaf := chain[0]
	switch {
	case len(r.pinned) > 0:
		for _, c := range r.pinned {
			if c.Equal(leaf) {
				return nil
			}
		}
		return &certificateError{fmt.Errorf("certificate (SHA-1 thumbprint %s) is not the ssl_certificate given", ThumbprintSHA1(leaf))}
	case r.thumb != nil:
		var got []byte
		if len(r.thumb) == sha1.Size {
			s := sha1.Sum(leaf.Raw)
			got = s[:]
		} else {
			s := sha256.Sum256(leaf.Raw)
			got = s[:]
		}
		if bytes.Equal(got, r.thumb) {
			return nil
		}
		return &certificateError{fmt.Errorf("thumbprint mismatch: server presented %s, expected %s", formatThumbprint(got), formatThumbprint(r.thumb))}
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: r.roots, Intermediates: inter}); err != nil {
		return &certificateError{err}
	}
	return nil
}

// httpClient is a client whose every TLS connection (redirects too) is
// checked by the rule; seen, if set, is given each leaf certificate
// before it is judged. No proxy: a CONNECT tunnel would do its own TLS.
func (r tlsRule) httpClient(seen func(*x509.Certificate)) *http.Client {
	d := &net.Dialer{Timeout: pullDialTimeout}
	tr := &http.Transport{
		DialContext: d.DialContext,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			raw, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(raw, &tls.Config{
				ServerName:         host,
				InsecureSkipVerify: true, // verified below, by the rule
				MinVersion:         tls.VersionTLS12,
				VerifyConnection: func(cs tls.ConnectionState) error {
					if seen != nil && len(cs.PeerCertificates) > 0 {
						seen(cs.PeerCertificates[0])
					}
					return r.verify(host, cs.PeerCertificates)
				},
			})
			hctx, cancel := context.WithTimeout(ctx, pullDialTimeout)
			defer cancel()
			if err := tc.HandshakeContext(hctx); err != nil {
				raw.Close()
				return nil, err
			}
			return tc, nil
		},
		DisableKeepAlives: true, // one request per pull: no idle connections left behind
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxPullRedirects {
				return fmt.Errorf("more than %d redirects", maxPullRedirects)
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return fmt.Errorf("refusing redirect from https to %s", req.URL.Redacted())
			}
			return nil
		},
	}
}

// ---- running pulls

// startPull starts fetching a PULL file whose record (TRANSFERRING, with
// its staging path) was just committed.
// The record is committed, so the pull starts, and its bookkeeping here
// is done, whether or not the caller is still there (WithoutCancel).
func (m *Manager) startPull(ctx context.Context, sessionID uint64, rec *meta.UpdateSessionFile, src *pullSource) {
	ctx = context.WithoutCancel(ctx)
	ls := m.liveFor(sessionID)
	requested, _ := normalizeChecksum(checksumOf(rec.Requested))
	pullCtx, cancel := context.WithCancel(m.pullCtx)
	p := &pull{ls: ls, sessionID: sessionID, name: rec.Name, staging: rec.Staging, src: src, cancel: cancel}
	sf, err := m.newStagedFile(ls, sessionID, rec.Name, rec.Staging, requested, "", nil)
	if err != nil {
		cancel()
		m.recordPullError(ctx, p, 0, err)
		return
	}
	sf.pull = true
	if rec.ExpectedSize != nil {
		// A source larger than declared is cut off at its size.
		sf.limit, sf.hasLimit = *rec.ExpectedSize, true
	}
	sf.opens = 0 // a pull holds no handle: only its bytes keep the session alive
	p.sf = sf
	m.mu.Lock()
	if m.closing || ls.ended.Load() {
		m.mu.Unlock()
		cancel()
		sf.discard()
		return
	}
	ls.uploads[p.name] = sf
	ls.pulls[p] = struct{}{}
	m.pullsWG.Add(1)
	m.pullsRunning.Add(1)
	m.mu.Unlock()
	m.touch(ls)
	go m.runPull(pullCtx, p)
	// The session may have ended between the record's commit and the
	// registration above, after afterEnd looked for pulls to abort.
	var ended bool
	_ = m.store.View(ctx, func(tx *meta.Tx) error {
		s, err := tx.UpdateSession(sessionID)
		ended = err != nil || State(s.State) != StateActive
		return nil
	})
	if ended {
		cancel()
	}
}

func (m *Manager) runPull(ctx context.Context, p *pull) {
	defer m.pullsWG.Done()
	defer m.pullsRunning.Add(-1)
	defer p.cancel()
	err := m.fetch(ctx, p)
	if ctx.Err() != nil {
		// Aborted: whoever aborted it owns the record.
		p.sf.discard()
		m.forgetPull(p)
		if m.afterPullAbort != nil {
			m.afterPullAbort()
		}
		return
	}
	// From here on the pull has ended: its outcome is recorded even if
	// Close cancels ctx meanwhile. The goroutine has no caller.
	if err != nil {
		n := p.sf.transferred.Load()
		p.sf.discard()
		m.forgetPull(p)
		m.recordPullError(context.Background(), p, n, err)
	} else {
		if _, err := p.sf.Finish(context.WithoutCancel(ctx)); err != nil && KindOf(err) != KindInvalidArgument {
			// A size or checksum verdict is in the record; anything
			// else means the file or session moved on meanwhile.
			m.log.Debug("pull finished into a changed session", "file", p.name, "err", err)
		}
		m.forgetPull(p)
	}
	m.finishPendingComplete(context.Background(), p.sessionID)
}

// forgetPull drops a pull from its session's live state.
func (m *Manager) forgetPull(p *pull) {
	m.mu.Lock()
	delete(p.ls.pulls, p)
	if p.ls.uploads[p.name] == p.sf {
		delete(p.ls.uploads, p.name)
	}
	m.mu.Unlock()
}

// abortPulls stops the running pulls of a name (re-add, remove).
func (m *Manager) abortPulls(sessionID uint64, name string) {
	m.mu.Lock()
	var stop []*pull
	if ls := m.live[sessionID]; ls != nil {
		for p := range ls.pulls {
			if p.name == name {
				stop = append(stop, p)
				delete(ls.pulls, p)
			}
		}
	}
	m.mu.Unlock()
	for _, p := range stop {
		p.cancel()
	}
}

// recordPullError puts a failed pull's file in ERROR, unless the file was
// re-added or removed, or the session ended, meanwhile.
func (m *Manager) recordPullError(ctx context.Context, p *pull, transferred int64, cause error) {
	msg := fmt.Sprintf("file %q: pull from %s failed: %v", p.name, p.src.u.Redacted(), cause)
	err := m.store.UpdateBuffered(ctx, func(tx *meta.Tx) error {
		s, err := tx.UpdateSession(p.sessionID)
		if err != nil {
			return err
		}
		if err := checkUpdate(s, opPull); err != nil {
			return err
		}
		r, err := tx.UpdateSessionFile(s.ID, p.name)
		if err != nil {
			return err
		}
		if r.Removed || r.Staging != p.staging {
			return nil
		}
		if err := setTransferStatus(r, TransferError); err != nil {
			return err
		}
		r.ErrorMessage = msg
		r.BytesTransferred = transferred
		return tx.PutUpdateSessionFile(r)
	})
	if err != nil {
		m.log.Debug("pull failed in a changed session", "file", p.name, "cause", cause, "err", err)
	}
}

// fetch copies the source into the pull's staged file.
func (m *Manager) fetch(ctx context.Context, p *pull) error {
	if p.src.u.Scheme == "file" {
		return fetchFile(ctx, p.src.u.Path, p.sf)
	}
	rule := p.src.rule
	rule.roots = m.rootCAs
	c := rule.httpClient(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.src.u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return unwrapURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server answered %s", resp.Status)
	}
	return copyInto(ctx, p.sf, resp.Body)
}

// unwrapURLError drops net/http's `Get "URL":` prefix: messages name
// the source themselves.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func fetchFile(ctx context.Context, name string, sf *StagedFile) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", name)
	}
	return copyInto(ctx, sf, f)
}

// copyInto appends r to sf chunk by chunk, so bytes_transferred grows as
// bytes arrive, until EOF or ctx ends.
func copyInto(ctx context.Context, sf *StagedFile, r io.Reader) error {
	buf := make([]byte, 256<<10)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := sf.Write(buf[:n]); err != nil {
				return err
			}
			total += int64(n)
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("reading after %d bytes: %w", total, rerr)
		}
	}
}

// ---- probe

// ProbeTransferEndpoint checks that a source endpoint could be pulled
// from (spec §7.5 probe): the URI is valid, the host answers, the
// resource exists and, for https, the certificate is trusted under the
// endpoint's rule. The leaf certificate of an https endpoint is reported
// even when it is not trusted. Only a malformed thumbprint or certificate
// is an error (InvalidArgument); everything else is a status.
func (m *Manager) ProbeTransferEndpoint(ctx context.Context, ep TransferEndpoint) (*ProbeResult, error) {
	res := &ProbeResult{ErrorMessages: []Message{}}
	fail := func(status ProbeStatus, err error) (*ProbeResult, error) {
		res.Status = status
		res.ErrorMessages = append(res.ErrorMessages, Message{
			ID: "com.vmware.content.updatesession.file.probe", DefaultMessage: err.Error(), Args: []string{},
		})
		return res, nil
	}
	u, err := parseSourceURI(ep.URI)
	if err != nil {
		return fail(ProbeInvalidURL, err)
	}
	rule, err := parseTLSRule(ep)
	if err != nil {
		return nil, errorf(KindInvalidArgument, "probe of %s: %v", u.Redacted(), err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, probeTimeout)
		defer cancel()
	}
	if u.Scheme == "file" {
		st, err := os.Stat(u.Path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return fail(ProbeResourceNotFound, err)
		case errors.Is(err, os.ErrPermission):
			return fail(ProbeInvalidCredentials, err)
		case err != nil:
			return fail(ProbeUnknownError, err)
		case !st.Mode().IsRegular():
			return fail(ProbeResourceNotFound, fmt.Errorf("%s is not a regular file", u.Path))
		}
		f, err := os.Open(u.Path)
		if err != nil {
			if errors.Is(err, os.ErrPermission) {
				return fail(ProbeInvalidCredentials, err)
			}
			return fail(ProbeUnknownError, err)
		}
		f.Close()
		res.Status = ProbeSuccess
		return res, nil
	}
	rule.roots = m.rootCAs
	var leaf *x509.Certificate
	c := rule.httpClient(func(cert *x509.Certificate) {
		if leaf == nil {
			leaf = cert // the endpoint's own, not a redirect target's
		}
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(ProbeInvalidURL, err)
	}
	resp, err := c.Do(req)
	if leaf != nil {
		res.SSLThumbprint, res.SSLCertificate = ThumbprintSHA1(leaf), CertificatePEM(leaf)
	}
	if err != nil {
		return fail(probeStatusOf(ctx, err), unwrapURLError(err))
	}
	resp.Body.Close() // the headers are the answer; nothing is downloaded
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		res.Status = ProbeSuccess
		return res, nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fail(ProbeResourceNotFound, fmt.Errorf("server answered %s", resp.Status))
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fail(ProbeInvalidCredentials, fmt.Errorf("server answered %s", resp.Status))
	default:
		return fail(ProbeUnknownError, fmt.Errorf("server answered %s", resp.Status))
	}
}

// probeStatusOf classifies a failed request.
func probeStatusOf(ctx context.Context, err error) ProbeStatus {
	var ce *certificateError
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return ProbeCertificateError
	case errors.As(err, &dns):
		if dns.IsTimeout {
			return ProbeTimedOut
		}
		return ProbeHostNotFound
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return ProbeTimedOut
	case errors.As(err, &ne) && ne.Timeout():
		return ProbeTimedOut
	}
	return ProbeUnknownError
}
