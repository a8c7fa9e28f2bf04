package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The API's own certificate, made on first start when none is given: a
// self-signed one, as a fresh vCenter or ESXi has, which clients accept by
// its thumbprint (govc -k or GOVC_THUMBPRINT).
const (
	tlsDir      = "tls"
	tlsCertName = "clfs.crt"
	tlsKeyName  = "clfs.key"
	// transferKeyName holds the key of the transfer URIs (see
	// transferKey); kept, so that URIs handed out survive a restart as
	// their sessions do.
	transferKeyName = "transfer.key"
	// Long, because a client pins the thumbprint: a renewal breaks
	// every pinned client, so it should happen when the admin chooses
	// (delete the files), not on a timer.
	selfSignedValidity = 10 * 365 * 24 * time.Hour
)

// serverCertificate loads the certificate of certFile and keyFile, or,
// when both are empty, the home's self-signed one, made if missing.
func serverCertificate(home, certFile, keyFile string, hosts []string) (tls.Certificate, error) {
	switch {
	case certFile != "" && keyFile != "":
		return loadCertificate(certFile, keyFile)
	case certFile != "" || keyFile != "":
		return tls.Certificate{}, errors.New("--tls-cert and --tls-key go together")
	}
	dir := filepath.Join(home, tlsDir)
	certFile, keyFile = filepath.Join(dir, tlsCertName), filepath.Join(dir, tlsKeyName)
	cert, err := loadCertificate(certFile, keyFile)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return cert, err
	}
	if err := writeSelfSigned(dir, certFile, keyFile, hosts); err != nil {
		return tls.Certificate{}, err
	}
	return loadCertificate(certFile, keyFile)
}

func loadCertificate(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("TLS certificate %s: %w", certFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("TLS certificate %s: %w", certFile, err)
		}
	}
	return cert, nil
}

// writeSelfSigned makes a P-256 key and a certificate for hosts (plus
// localhost and the loopback addresses), the key written 0600 and both
// files in place only when complete.
func writeSelfSigned(dir, certFile, keyFile string, hosts []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("TLS directory: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "clfs", Organization: []string{"clfs content library"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, hosts...) {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	// The key first: a certificate without its key would be loaded and
	// fail on every start.
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// loadTransferKey reads the home's transfer key, made on first use.
func loadTransferKey(home string) ([]byte, error) {
	dir := filepath.Join(home, tlsDir)
	path := filepath.Join(dir, transferKeyName)
	key, err := os.ReadFile(path)
	if err == nil && len(key) == 32 {
		return key, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("transfer key: %w", err)
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("transfer key: %w", err)
	}
	if err := writeFileAtomic(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("transfer key: %w", err)
	}
	return key, nil
}
