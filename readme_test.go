package clfs_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// README.md starts with two commands that work on a fresh machine as they
// stand: one that builds and mounts clfs, one that installs what the tests
// drive and runs the whole suite. CI must run that same second command, and
// it must install the tools the tests drive (a plain go test on a fresh
// machine failed a dozen tests for want of rsync, restic, fio, mount.fuse3).
func TestREADMETestCommandIsCIs(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)^# [^\n]*\n\n```sh\n(.*?)\n```").FindSubmatch(readme)
	if block == nil {
		t.Fatal("README.md does not start with a title and a sh block of commands")
	}
	lines := strings.Split(string(block[1]), "\n")
	if len(lines) != 2 {
		t.Fatalf("README.md's first block has %d lines, want two commands: %q", len(lines), lines)
	}
	if !strings.Contains(lines[0], "clfs mount") {
		t.Errorf("README.md's first command does not mount clfs: %q", lines[0])
	}
	testCmd := lines[1]
	ci, err := os.ReadFile(".ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !containsLine(strings.Split(string(ci), "\n"), testCmd) {
		t.Errorf(".ci/run does not run README.md's test command %q as a line of its own", testCmd)
	}
	script, err := os.ReadFile("testdata/test.sh")
	if err != nil {
		t.Fatal(err)
	}
	if testCmd != "sh testdata/test.sh" {
		t.Fatalf("README.md's test command is %q; this test checks testdata/test.sh", testCmd)
	}
	for _, pkg := range []string{"rsync", "restic", "fio", "fuse3", "attr", "util-linux"} {
		if !regexp.MustCompile(`(?m)^pkgs=".*\b` + pkg + `\b`).Match(script) {
			t.Errorf("testdata/test.sh does not install %s, which the tests drive", pkg)
		}
	}
	if !strings.Contains(string(script), "go test -race -count=1") {
		t.Error("testdata/test.sh does not run go test -race -count=1")
	}
}

func containsLine(lines []string, s string) bool {
	for _, l := range lines {
		if strings.TrimSpace(l) == s {
			return true
		}
	}
	return false
}
