package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
)

// Records are printed either as an aligned table for people or, with
// --json, as the API's own JSON (the sessionmgr types carry the vSphere
// field names), for scripts.

// jsonFlag is a new --json flag (cli flags keep parse state, so each
// command gets its own).
func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print the records as JSON, with the API's field names"}
}

// printJSON prints v as indented JSON. Lists must be non-nil so that an
// empty one prints as [], not null.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// table prints rows aligned in columns under a header.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = cell(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// cell keeps a table cell on one line and never empty.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}

// printFields prints one record as "key: value" lines, aligned.
func printFields(w io.Writer, fields [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, f := range fields {
		fmt.Fprintf(tw, "%s:\t%s\n", f[0], cell(f[1]))
	}
	return tw.Flush()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// fmtTimeNs is fmtTime with nanoseconds, for mtimes, which clfs keeps
// exactly.
func fmtTimeNs(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05.000000000")
}

func fmtInt(n int64) string { return fmt.Sprint(n) }

// fileMode converts a POSIX mode (permission and set-id bits, as
// sessionmgr stores them) to Go's.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// posixMode is the inverse of fileMode.
func posixMode(mode fs.FileMode) uint32 {
	m := uint32(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if mode&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

func fmtMode(m uint32) string { return fmt.Sprintf("%04o", m&0o7777) }

// newProgress returns a byte progress bar on g.stderr, or nil when stderr
// is not a terminal: scripts and logs get no progress output.
func newProgress(g *globals, size int64, what string) *progressbar.ProgressBar {
	if !g.progress {
		return nil
	}
	w := g.stderr
	return progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(20),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionFullWidth(),
		progressbar.OptionClearOnFinish(),
	)
}

// progressWriter counts bytes into a progress bar; a nil bar counts
// nothing.
type progressWriter struct {
	bar *progressbar.ProgressBar
}

func (p progressWriter) Write(b []byte) (int, error) {
	if p.bar != nil {
		p.bar.Add64(int64(len(b)))
	}
	return len(b), nil
}

func finishProgress(bar *progressbar.ProgressBar) {
	if bar != nil {
		bar.Finish()
	}
}

// listingAction is the Action of a command whose only flag is --json.
func listingAction(run func(ctx context.Context, g *globals, opts listOptions, args []string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		opts := listOptions{JSON: c.Bool("json")}
		return runCommand(c, func(ctx context.Context, g *globals, args []string) error {
			return run(ctx, g, opts, args)
		})
	}
}
