package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"clfs/mount"
	"clfs/sessionmgr"
)

// `clfs status` through a running mount: one node, the mount itself,
// with its mountpoint as its address.
func TestStatusShowsTheMount(t *testing.T) {
	e := newCLI(t)
	e.must("library", "create", "lib")
	mnt, _ := mountCLIHome(t, e.home)
	var nodes []sessionmgr.NodeInfo
	e.json(&nodes, "status", "--json")
	if len(nodes) != 1 {
		t.Fatalf("status: %+v, want one node", nodes)
	}
	n := nodes[0]
	if n.State != "up" || !n.Self || n.Addr != mnt || n.PID != os.Getpid() || n.Home != e.home {
		t.Fatalf("the mount's node: %+v, want up, this, at %s", n, mnt)
	}
	out := e.must("status")
	if !strings.Contains(out, mnt) || !strings.Contains(out, "this") || !strings.HasPrefix(out, "NODE") {
		t.Fatalf("clfs status:\n%s", out)
	}
}

// Two homes on one etcd catalog: a CLI on the second home lists the
// mount of the first, with its ACTIVE sessions, and itself.
func TestStatusListsEveryNode(t *testing.T) {
	url := sharedMetaURL(t)
	mounted := filepath.Join(t.TempDir(), "a")
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	mt, err := mount.Start(mount.Options{Mountpoint: mnt, Home: mounted, Meta: url, Logger: slog.New(slog.NewTextHandler(logWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mt.Wait() }()
	defer func() {
		if err := errors.Join(mt.Unmount(), <-done); err != nil {
			t.Error(err)
		}
	}()
	ctx := context.Background()
	lib, err := mt.Manager.CreateLibrary(ctx, sessionmgr.LibraryCreateSpec{Name: "lib"}, "")
	if err != nil {
		t.Fatal(err)
	}
	item, err := mt.Manager.CreateItem(ctx, sessionmgr.ItemCreateSpec{LibraryID: lib, Name: "item"}, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := mt.Manager.CreateUpdateSession(ctx, sessionmgr.UpdateSessionCreateSpec{LibraryItemID: item}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer mt.Manager.CancelUpdateSession(ctx, s)

	e := newCLI(t)
	var nodes []sessionmgr.NodeInfo
	e.json(&nodes, "--meta", url, "status", "--json")
	if len(nodes) != 2 {
		t.Fatalf("status: %+v, want the mount and this command", nodes)
	}
	var them, me sessionmgr.NodeInfo
	for _, n := range nodes {
		if n.Self {
			me = n
		} else {
			them = n
		}
	}
	if them.Addr != mnt || them.Home != mounted || them.UpdateSessions != 1 || them.State != "up" {
		t.Fatalf("the mount's node: %+v", them)
	}
	if me.Home != e.home || me.State != "up" {
		t.Fatalf("this command's node: %+v", me)
	}
	// The command's node leaves with it.
	e.json(&nodes, "--meta", url, "status", "--json")
	if len(nodes) != 2 {
		t.Fatalf("a second status: %+v, want the same two nodes (the first command's gone)", nodes)
	}
}

// sharedMetaURL is an etcd catalog under a fresh prefix on
// CLFS_TEST_ETCD's cluster, dropped at the end; without one the test is
// skipped, loudly, and under CI it fails.
func sharedMetaURL(t *testing.T) string {
	t.Helper()
	endpoints := os.Getenv("CLFS_TEST_ETCD")
	if endpoints == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but CLFS_TEST_ETCD is not: this test needs a real etcd cluster (sh testdata/services.sh start)")
		}
		t.Skip("CLFS_TEST_ETCD not set: multi-node test NOT run (sh testdata/services.sh start; export $(sh testdata/services.sh env))")
	}
	var b [6]byte
	rand.Read(b[:])
	url := "etcd://" + endpoints + "/clfs-test/cli-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		if err := sessionmgr.DropCatalog(context.Background(), url); err != nil {
			t.Errorf("drop the test's catalog %s: %v", url, err)
		}
	})
	return url
}
