package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"clfs/mount/control"
)

// The counters are the daemon's: a create, a write and a close of one file
// in a real mount move CREATE, WRITE, FLUSH and RELEASE by at least one
// each, as both the text and the --json form of `clfs counters` show.
func TestCountersShowTheMountsRequests(t *testing.T) {
	e := newCLI(t)
	e.must("library", "create", "lib")
	mnt, _ := mountCLIHome(t, e.home)
	item := filepath.Join(mnt, "lib", "item")
	if err := os.Mkdir(item, 0o755); err != nil {
		t.Fatal(err)
	}
	var before map[string]uint64
	e.json(&before, "counters", "--json")

	if err := os.WriteFile(filepath.Join(item, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The kernel sends RELEASE after close(2) has returned, so it may
	// arrive a moment after the write is done.
	var after map[string]uint64
	for deadline := time.Now().Add(5 * time.Second); ; {
		e.json(&after, "counters", "--json")
		if after["RELEASE"] > before["RELEASE"] || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, op := range []string{"CREATE", "WRITE", "FLUSH", "RELEASE"} {
		if after[op] <= before[op] {
			t.Errorf("%s: %d before the write, %d after; want more", op, before[op], after[op])
		}
	}
	if after["CREATE"]-before["CREATE"] != 1 {
		t.Errorf("CREATE moved by %d for one new file; want 1", after["CREATE"]-before["CREATE"])
	}

	out := e.must("counters")
	for _, op := range []string{"OPCODE", "CREATE", "WRITE", "FLUSH", "RELEASE", "MKDIR"} {
		if !regexp.MustCompile(`(?m)^` + op + `\s+\S+$`).MatchString(out) {
			t.Errorf("clfs counters has no line %s COUNT:\n%s", op, out)
		}
	}
}

// Without a running mount there are no counters to show.
func TestCountersNeedAMount(t *testing.T) {
	e := newCLI(t)
	e.must("library", "create", "lib")
	if err := e.mustFail("counters"); !errors.Is(err, control.ErrNoMount) {
		t.Errorf("clfs counters without a mount: %v, want %v", err, control.ErrNoMount)
	}
}
