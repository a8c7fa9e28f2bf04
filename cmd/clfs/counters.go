package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/urfave/cli/v2"

	"clfs/mount/control"
)

func cmdCounters() *cli.Command {
	return &cli.Command{
		Name:   "counters",
		Usage:  "print the FUSE requests the running mount has served, by opcode",
		Flags:  []cli.Flag{jsonFlag()},
		Action: listingAction(runCounters),
	}
}

// runCounters asks the mount serving the home for its counters: they live
// in the daemon, so without one there is nothing to print. Opcodes never
// seen are left out; with --json the answer is an object opcode → count.
func runCounters(ctx context.Context, g *globals, opts listOptions, args []string) error {
	if err := wantArgs(args); err != nil {
		return err
	}
	c, err := control.Dial(g.home)
	if err != nil {
		return err
	}
	defer c.Close()
	counts, err := c.Counters(ctx)
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(g.stdout, counts)
	}
	ops := make([]string, 0, len(counts))
	for op := range counts {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	t := newTable(g.stdout, "OPCODE", "COUNT")
	for _, op := range ops {
		t.row(op, fmt.Sprint(counts[op]))
	}
	return t.flush()
}
