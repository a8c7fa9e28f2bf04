package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"clfs/mount/api"
	"clfs/sessionmgr"
)

func cmdStatus() *cli.Command {
	return &cli.Command{
		Name:   "status",
		Usage:  "list the nodes (mounts, servers) that have the catalog open, with their heartbeats and ACTIVE sessions",
		Flags:  []cli.Flag{jsonFlag()},
		Action: listingAction(runStatus),
	}
}

// runStatus asks the daemon serving the home, or else opens the catalog
// itself: then the command is a node of its own for as long as it runs,
// listed as "this". A node's state is up, silent (no heartbeat for a
// lease: the leader fails its sessions at its next round) or down (they
// were failed; it clears the mark when it comes back).
func runStatus(ctx context.Context, g *globals, opts listOptions, args []string) error {
	if err := wantArgs(args); err != nil {
		return err
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	nodes, err := api.Call(ctx, a, api.Nodes, api.None{})
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(g.stdout, nonNil(nodes))
	}
	t := newTable(g.stdout, "NODE", "STATE", "ROLE", "HOST", "PID", "HOME", "ADDRESS", "HEARTBEAT", "UPDATES", "DOWNLOADS", "VERSION", "STARTED")
	now := time.Now()
	for _, n := range nodes {
		role := ""
		switch {
		case n.Leader && n.Self:
			role = "leader,this"
		case n.Leader:
			role = "leader"
		case n.Self:
			role = "this"
		}
		age := now.Sub(n.Heartbeat).Round(time.Second)
		t.row(fmt.Sprint(n.ID), n.State, role, n.Host, fmt.Sprint(n.PID), n.Home, n.Addr,
			fmt.Sprintf("%s ago", max(age, 0)), fmt.Sprint(n.UpdateSessions), fmt.Sprint(n.DownloadSessions),
			n.Version, fmtTime(n.Started))
	}
	return t.flush()
}

// nodeOptions are the flags of a daemon as a node of a shared catalog.
type nodeOptions struct {
	Lease time.Duration
	Grace time.Duration
}

func nodeLeaseFlag() cli.Flag {
	return &cli.DurationFlag{Name: "node-lease", Value: sessionmgr.DefaultNodeLease,
		Usage: "how long this node may go without a heartbeat (sent every third of it) before the leader fails its sessions"}
}

func contentGraceFlag() cli.Flag {
	return &cli.DurationFlag{Name: "content-grace", Value: sessionmgr.DefaultContentGrace,
		Usage: "on a shared catalog, how long content no file references any more stays before the leader deletes it"}
}

func nodeFlags(c *cli.Context) nodeOptions {
	return nodeOptions{Lease: c.Duration("node-lease"), Grace: c.Duration("content-grace")}
}
