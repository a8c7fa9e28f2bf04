package mount

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// A cluster of the test's own: killing members of the shared one would
// break the tests running beside it.

type etcdMember struct {
	name, dir, log string
	args           []string
	cmd            *exec.Cmd
	health         string
}

type etcdCluster struct {
	t       *testing.T
	bin     string
	members []*etcdMember
	clients string // HOST:PORT,...
}

// startEtcdCluster starts three etcd members on loopback ports of the
// test's own (client 2395N, peer 2396N, metrics 2397N) with the binary of
// CLFS_TEST_ETCD_BIN (testdata/services.sh builds it).
func startEtcdCluster(t *testing.T) *etcdCluster {
	t.Helper()
	bin := os.Getenv("CLFS_TEST_ETCD_BIN")
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but CLFS_TEST_ETCD_BIN is not: this test runs an etcd cluster of its own (export $(sh testdata/services.sh env))")
		}
		t.Skip("CLFS_TEST_ETCD_BIN not set: etcd failure tests NOT run (sh testdata/services.sh start; export $(sh testdata/services.sh env))")
	}
	c := &etcdCluster{t: t, bin: bin}
	dir := t.TempDir()
	var initial, clients []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("f%d=http://127.0.0.1:2396%d", i, i))
		clients = append(clients, fmt.Sprintf("127.0.0.1:2395%d", i))
	}
	c.clients = strings.Join(clients, ",")
	for i := range 3 {
		m := &etcdMember{
			name:   fmt.Sprintf("f%d", i),
			dir:    filepath.Join(dir, fmt.Sprint(i)),
			log:    filepath.Join(dir, fmt.Sprintf("etcd%d.log", i)),
			health: fmt.Sprintf("http://127.0.0.1:2397%d/health", i),
		}
		m.args = []string{
			"--name", m.name, "--data-dir", m.dir,
			"--listen-client-urls", "http://" + clients[i], "--advertise-client-urls", "http://" + clients[i],
			"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:2396%d", i),
			"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:2396%d", i),
			"--listen-metrics-urls", fmt.Sprintf("http://127.0.0.1:2397%d", i),
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-token", "clfs-fail-test",
			"--initial-cluster-state", "new", "--log-level", "warn",
		}
		c.members = append(c.members, m)
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			if m.cmd != nil && m.cmd.ProcessState == nil {
				m.cmd.Process.Kill()
				m.cmd.Wait()
			}
		}
	})
	for i := range c.members {
		c.start(i)
	}
	for i := range c.members {
		c.waitHealthy(i)
	}
	return c
}

func (c *etcdCluster) start(i int) {
	c.t.Helper()
	m := c.members[i]
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	m.cmd = exec.Command(c.bin, m.args...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		c.t.Fatalf("start etcd member %s: %v", m.name, err)
	}
	logf.Close()
}

func (c *etcdCluster) waitHealthy(i int) {
	c.t.Helper()
	m := c.members[i]
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(m.health)
		if err == nil {
			b := new(bytes.Buffer)
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if strings.Contains(b.String(), `"health":"true"`) {
				return
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(m.log)
			c.t.Fatalf("etcd member %s not healthy after 30 s:\n%s", m.name, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *etcdCluster) kill(i int) {
	c.t.Helper()
	m := c.members[i]
	m.cmd.Process.Signal(syscall.SIGKILL)
	m.cmd.Wait()
}

// TestEtcdMemberFailures: a mount on a three-member cluster keeps
// working with one member killed; with all three killed its operations
// fail with EIO within the request timeout, nothing half-applied; when
// the members come back, work resumes and fsck is clean.
func TestEtcdMemberFailures(t *testing.T) {
	c := startEtcdCluster(t)
	url := "etcd://" + c.clients + "/clfs-fail?request-timeout=2s&dial-timeout=2s"
	home, dir := t.TempDir(), newMountpoint(t)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	mt, err := Start(Options{Mountpoint: dir, Home: home, Meta: url, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	tm := &testMount{Mount: mt, t: t, Home: home, Dir: dir, done: make(chan error, 1)}
	go func() { tm.done <- mt.Wait() }()
	t.Cleanup(tm.unmount)
	item := tm.path("lib", "item")
	if err := os.MkdirAll(item, 0o755); err != nil {
		t.Fatal(err)
	}
	written := map[string][]byte{}
	work := func(round string, n int) {
		t.Helper()
		for i := range n {
			name := fmt.Sprintf("%s-%d", round, i)
			data := bytes.Repeat([]byte(name+";"), 2000*(i+1))
			if err := os.WriteFile(filepath.Join(item, name), data, 0o644); err != nil {
				t.Fatalf("%s: write %s: %v", round, name, err)
			}
			written[name] = data
			if got, err := os.ReadFile(filepath.Join(item, name)); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: read %s back: %v", round, name, err)
			}
			if entries, err := os.ReadDir(item); err != nil || len(entries) != len(written) {
				t.Fatalf("%s: ls: %d entries, %v; want %d", round, len(entries), err, len(written))
			}
		}
	}
	work("healthy", 5)

	for i := range c.members {
		// One member down at a time, each of the three in turn (one of
		// them leads): everything goes on.
		c.kill(i)
		work(fmt.Sprintf("without-f%d", i), 10)
		c.start(i)
		c.waitHealthy(i)
	}

	for i := range c.members {
		c.kill(i)
	}
	start := time.Now()
	err = os.WriteFile(filepath.Join(item, "during-outage"), []byte("not to be kept"), 0o644)
	failedAfter := time.Since(start)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("a write with no etcd member up: %v, want EIO", err)
	}
	if _, err := os.Stat(filepath.Join(item, "never-seen")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("a lookup with no etcd member up: %v, want EIO", err)
	}
	if failedAfter > 20*time.Second {
		t.Errorf("the write failed only after %v (request timeout 2s)", failedAfter)
	}

	for i := range c.members {
		c.start(i)
	}
	for i := range c.members {
		c.waitHealthy(i)
	}
	// The catalog answers again; the kernel may still hold the failed
	// lookups: give the first operation a few tries.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.ReadDir(item)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mount did not come back with etcd: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(item, "during-outage")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the write that failed during the outage: %v, want no such file", err)
	}
	work("after", 5)
	for name, data := range written {
		if got, err := os.ReadFile(filepath.Join(item, name)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s after the outage: %v", name, err)
		}
	}
	rep, err := mt.Manager.Fsck(context.Background(), nil)
	if err != nil || len(rep.Problems) != 0 || rep.FilesChecked != len(written) {
		t.Fatalf("fsck after the outage: %+v %v, want %d files", rep, err, len(written))
	}
	t.Logf("with no etcd member up, a write failed with EIO after %v", failedAfter.Round(time.Millisecond))
}

// TestEtcdWrongCredentials: on a cluster with authentication on, a mount
// given a wrong password fails at start with one error naming the
// catalog (and not the password); the right one mounts.
func TestEtcdWrongCredentials(t *testing.T) {
	c := startEtcdCluster(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(c.clients, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, step := range []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "root-secret"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("enable authentication: %v", err)
		}
	}
	cli.Close()
	base := "etcd://" + c.clients + "/clfs-auth?dial-timeout=2s"
	for _, bad := range []string{base + "&user=root&password=wrong-secret", base} {
		_, err := Start(Options{Mountpoint: newMountpoint(t), Home: t.TempDir(), Meta: bad, Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !strings.Contains(err.Error(), "etcd://"+c.clients+"/clfs-auth") || strings.Contains(err.Error(), "wrong-secret") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("mount with bad credentials (%s): %v; want one line naming the catalog, without the password", strings.ReplaceAll(bad, "wrong-secret", "***"), err)
		}
		t.Logf("bad credentials: %v", err)
	}
	mt, err := Start(Options{Mountpoint: newMountpoint(t), Home: t.TempDir(), Meta: base + "&user=root&password=root-secret", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("mount with the right credentials: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- mt.Wait() }()
	if err := errors.Join(mt.Unmount(), <-done); err != nil {
		t.Fatal(err)
	}
}
