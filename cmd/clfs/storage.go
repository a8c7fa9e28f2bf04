package main

import (
	"context"
	"strings"

	"github.com/urfave/cli/v2"

	"clfs/mount/api"
)

func cmdStorage() *cli.Command {
	return &cli.Command{
		Name:  "storage",
		Usage: "show where an item's files are stored",
		Subcommands: []*cli.Command{
			{
				Name:      "ls",
				Usage:     "list the stored copy of each file of an item",
				ArgsUsage: "LIB/ITEM",
				Flags:     []cli.Flag{jsonFlag()},
				Action:    listingAction(runStorageLs),
			},
		},
	}
}

func runStorageLs(ctx context.Context, g *globals, opts listOptions, args []string) error {
	a, _, it, err := itemArg(ctx, g, args)
	if err != nil {
		return err
	}
	storage, err := api.Call(ctx, a, api.ListStorage, api.FilesOf{ItemID: it.ID})
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(g.stdout, nonNil(storage))
	}
	t := newTable(g.stdout, "NAME", "SIZE", "VERSION", "URI")
	for _, s := range storage {
		t.row(s.Name, fmtInt(s.Size), s.Version, strings.Join(s.StorageURIs, ","))
	}
	return t.flush()
}
