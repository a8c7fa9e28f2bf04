package meta

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestEtcdURL(t *testing.T) {
	env := map[string]string{"ETCDCTL_USER": "envuser:envpass"}
	getenv := func(k string) string { return env[k] }
	parse := func(raw string) (*etcdEngine, string, string, error) {
		t.Helper()
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		e, cfg, err := parseEtcdURL(u, getenv)
		if err != nil {
			return nil, "", "", err
		}
		if e.prefix == "" || len(cfg.Endpoints) == 0 {
			t.Fatalf("%s: prefix %q, endpoints %v", raw, e.prefix, cfg.Endpoints)
		}
		return e, cfg.Username, cfg.Password, nil
	}
	e, user, pass, err := parse("etcd://10.0.0.1:2379,10.0.0.2:2379/clfs/prod/")
	if err != nil || e.prefix != "clfs/prod/" || strings.Join(e.endpoints, " ") != "10.0.0.1:2379 10.0.0.2:2379" {
		t.Errorf("hosts and prefix: %+v %v", e, err)
	}
	if user != "envuser" || pass != "envpass" {
		t.Errorf("ETCDCTL_USER user:password: %q %q", user, pass)
	}
	if _, user, pass, _ = parse("etcd://h:1/p?user=qu&password=qp"); user != "qu" || pass != "qp" {
		t.Errorf("query user and password: %q %q", user, pass)
	}
	if _, user, pass, _ = parse("etcd://uu:up@h:1/p?user=qu"); user != "uu" || pass != "up" {
		t.Errorf("URL user and password: %q %q", user, pass)
	}
	if e, _, _, err = parse("etcd://h:1/p?max-txn-ops=512&max-request-bytes=10485760"); err != nil || e.maxOps != 512 || e.maxBytes != 10<<20 {
		t.Errorf("limits: %+v %v", e, err)
	}
	u, _ := url.Parse("etcd://h:1/p?tls=true")
	if _, cfg, err := parseEtcdURL(u, getenv); err != nil || cfg.TLS == nil {
		t.Errorf("tls=true: %v %v", cfg.TLS, err)
	}
	for raw, want := range map[string]string{
		"etcd://h:1":                       "no key prefix",
		"etcd://h:1/":                      "no key prefix",
		"etcd:///p":                        "no endpoints",
		"etcd://h:1/p?max-txn-ops=x":       "max-txn-ops",
		"etcd://h:1/p?dial-timeout=soon":   "dial-timeout",
		"etcd://h:1/p?cacert=/nonexistent": "TLS",
		"etcd://h:1/p?tls=maybe":           "tls",
		"etcd://h:1/p?request-timeout=0s":  "request-timeout",
	} {
		if _, _, _, err := parse(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error about %s", raw, err, want)
		}
	}
}

func TestCatalogURLs(t *testing.T) {
	for raw, want := range map[string]string{
		"etcd://u:secret@h:1/p?password=secret": "secret",
	} {
		if got := Redact(raw); strings.Contains(got, want) {
			t.Errorf("Redact(%q) = %q", raw, got)
		}
	}
	for raw, want := range map[string]string{
		"foo://x/y": "unknown engine",
		"badger://": "no directory",
	} {
		if _, err := Open(bg, Options{URL: raw}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q): %v, want %q", raw, err, want)
		}
	}
	// An etcd nobody answers at: one error, soon, naming the catalog.
	start := time.Now()
	_, err := Open(bg, Options{URL: "etcd://127.0.0.1:1/p?dial-timeout=200ms&password=secret"})
	if err == nil || !strings.Contains(err.Error(), "etcd://127.0.0.1:1/p") || strings.Contains(err.Error(), "secret") {
		t.Errorf("unreachable etcd: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("unreachable etcd took %v", d)
	}
	// A plain path and badger:// are the same catalog.
	dir := t.TempDir()
	for _, raw := range []string{dir, "badger://" + dir} {
		s, err := Open(bg, Options{URL: raw})
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if s.String() != "badger://"+dir {
			t.Errorf("%s opened %s", raw, s)
		}
		s.Close()
	}
}

// TestEtcdForeignPrefix: a prefix that holds keys clfs did not write is
// refused at Open, with a line that says so, and nothing is written
// there; an empty prefix becomes a catalog.
func TestEtcdForeignPrefix(t *testing.T) {
	endpoints := testEtcdEndpoints(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var b [6]byte
	rand.Read(b[:])
	prefix := "clfs-test/foreign-" + hex.EncodeToString(b[:])
	defer cli.Delete(bg, prefix+"/", clientv3.WithPrefix())
	if _, err := cli.Put(bg, prefix+"/registry/pods/web", "someone else's"); err != nil {
		t.Fatal(err)
	}
	_, err = Open(bg, Options{URL: "etcd://" + endpoints + "/" + prefix})
	if !errors.Is(err, ErrForeignData) || !strings.Contains(err.Error(), prefix) || !strings.Contains(err.Error(), "registry/pods/web") {
		t.Fatalf("Open of a prefix with another application's keys: %v, want ErrForeignData naming the catalog and a key", err)
	}
	resp, err := cli.Get(bg, prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 1 {
		t.Fatalf("keys under the refused prefix: %d, %v; want only the foreign one", resp.Count, err)
	}
	c := newEtcdCatalog(t, endpoints)
	s := c.open(t) // empty: a new catalog
	s.Close()
	c.open(t).Close() // and again: it is marked as clfs's now
}
