package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"clfs/mount/api"
	"clfs/sessionmgr"
)

func cmdLibrary() *cli.Command {
	return &cli.Command{
		Name:  "library",
		Usage: "create, list, show and delete libraries",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a local library",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "storage", Usage: "storage backing `DIR` (default: the home's storage/)"},
					&cli.StringFlag{Name: "description", Usage: "description `TEXT`"},
				},
				Action: func(c *cli.Context) error {
					opts := libraryCreateOptions{StorageDir: c.String("storage"), Description: c.String("description")}
					return runCommand(c, func(ctx context.Context, g *globals, args []string) error {
						return runLibraryCreate(ctx, g, opts, args)
					})
				},
			},
			{
				Name:   "ls",
				Usage:  "list libraries",
				Flags:  []cli.Flag{jsonFlag()},
				Action: listingAction(runLibraryLs),
			},
			{
				Name:      "info",
				Usage:     "show a library",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{jsonFlag()},
				Action:    listingAction(runLibraryInfo),
			},
			{
				Name:      "rm",
				Usage:     "delete a library and its items",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					return runCommand(c, func(ctx context.Context, g *globals, args []string) error {
						return runLibraryRm(ctx, g, args)
					})
				},
			},
		},
	}
}

// listOptions are the options of commands that print records.
type listOptions struct {
	JSON bool
}

type libraryCreateOptions struct {
	StorageDir  string
	Description string
}

func runLibraryCreate(ctx context.Context, g *globals, opts libraryCreateOptions, args []string) error {
	if err := wantArgs(args, "NAME"); err != nil {
		return err
	}
	// A relative storage directory is the caller's, not the daemon's.
	if opts.StorageDir != "" {
		dir, err := filepath.Abs(opts.StorageDir)
		if err != nil {
			return err
		}
		opts.StorageDir = dir
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	id, err := api.Call(ctx, a, api.CreateLibrary, api.LibraryCreate{Spec: sessionmgr.LibraryCreateSpec{
		Name: args[0], Description: opts.Description, StorageDir: opts.StorageDir,
	}})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(g.stdout, id)
	return err
}

func runLibraryLs(ctx context.Context, g *globals, opts listOptions, args []string) error {
	if err := wantArgs(args); err != nil {
		return err
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	libs, err := api.Call(ctx, a, api.ListLibraries, api.None{})
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(g.stdout, nonNil(libs))
	}
	t := newTable(g.stdout, "NAME", "ID", "STORAGE", "MODIFIED", "DESCRIPTION")
	for _, l := range libs {
		t.row(l.Name, l.ID, storageURIs(l), fmtTime(l.LastModifiedTime), l.Description)
	}
	return t.flush()
}

func runLibraryInfo(ctx context.Context, g *globals, opts listOptions, args []string) error {
	if err := wantArgs(args, "NAME"); err != nil {
		return err
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	l, err := api.Call(ctx, a, api.LibraryByName, api.LibraryName{Name: args[0]})
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(g.stdout, l)
	}
	return printFields(g.stdout, [][2]string{
		{"Name", l.Name},
		{"ID", l.ID},
		{"Type", l.Type},
		{"Description", l.Description},
		{"Storage", storageURIs(*l)},
		{"Version", l.Version},
		{"Created", fmtTime(l.CreationTime)},
		{"Modified", fmtTime(l.LastModifiedTime)},
		{"Mode", fmtMode(l.Posix.Mode)},
	})
}

func runLibraryRm(ctx context.Context, g *globals, args []string) error {
	if err := wantArgs(args, "NAME"); err != nil {
		return err
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	l, err := api.Call(ctx, a, api.LibraryByName, api.LibraryName{Name: args[0]})
	if err != nil {
		return err
	}
	return api.Run(ctx, a, api.DeleteLibrary, api.ByID{ID: l.ID})
}

func storageURIs(l sessionmgr.Library) string {
	var uris []string
	for _, b := range l.StorageBackings {
		uris = append(uris, b.StorageURI)
	}
	return strings.Join(uris, ",")
}
