package main

import (
	"context"
	"strings"

	"github.com/urfave/cli/v2"

	"clfs/mount/api"
	"clfs/sessionmgr"
)

func cmdFile() *cli.Command {
	return &cli.Command{
		Name:  "file",
		Usage: "list and show the committed files of an item",
		Subcommands: []*cli.Command{
			{
				Name:      "ls",
				Usage:     "list the files of an item",
				ArgsUsage: "LIB/ITEM",
				Flags:     []cli.Flag{jsonFlag()},
				Action:    listingAction(runFileLs),
			},
			{
				Name:      "info",
				Usage:     "show one file",
				ArgsUsage: "LIB/ITEM/FILE",
				Flags:     []cli.Flag{jsonFlag()},
				Action:    listingAction(runFileInfo),
			},
		},
	}
}

// parseFilePath splits LIB/ITEM/FILE.
func parseFilePath(arg string) (item, file string, err error) {
	i := strings.LastIndexByte(arg, '/')
	if i < 0 || arg[i+1:] == "" {
		return "", "", usagef("%q is not LIB/ITEM/FILE", arg)
	}
	item, file = arg[:i], arg[i+1:]
	if _, _, err := parseItemPath(item); err != nil || strings.HasSuffix(item, "/") {
		return "", "", usagef("%q is not LIB/ITEM/FILE", arg)
	}
	return item, file, nil
}

func runFileLs(ctx context.Context, g *globals, opts listOptions, args []string) error {
	a, _, it, err := itemArg(ctx, g, args)
	if err != nil {
		return err
	}
	files, err := api.Call(ctx, a, api.ListFiles, api.FilesOf{ItemID: it.ID})
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(g.stdout, nonNil(files))
	}
	t := newTable(g.stdout, "NAME", "SIZE", "VERSION", "MODE", "MTIME", "SHA256")
	for _, f := range files {
		t.row(f.Name, fmtInt(f.Size), f.Version, fmtMode(f.Posix.Mode), fmtTime(f.Posix.Mtime), checksum(f.ChecksumInfo))
	}
	return t.flush()
}

func runFileInfo(ctx context.Context, g *globals, opts listOptions, args []string) error {
	if err := wantArgs(args, "LIB/ITEM/FILE"); err != nil {
		return err
	}
	itemPath, name, err := parseFilePath(args[0])
	if err != nil {
		return err
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	lib, it, err := resolveItem(ctx, a, itemPath)
	if err != nil {
		return err
	}
	f, err := api.Call(ctx, a, api.GetFile, api.FileOf{ItemID: it.ID, Name: name})
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(g.stdout, f)
	}
	fields := [][2]string{
		{"Name", f.Name},
		{"Item", lib.Name + "/" + it.Name},
		{"Size", fmtInt(f.Size)},
		{"Version", f.Version},
		{"Checksum", checksumWithAlg(f.ChecksumInfo)},
	}
	if f.RequestedChecksum != nil {
		fields = append(fields, [2]string{"Requested checksum", checksumWithAlg(f.RequestedChecksum)})
	}
	fields = append(fields,
		[2]string{"Mode", fmtMode(f.Posix.Mode)},
		[2]string{"Mtime", fmtTimeNs(f.Posix.Mtime)},
		[2]string{"Inode", fmtInt(int64(f.Posix.Ino))},
	)
	return printFields(g.stdout, fields)
}

func checksum(c *sessionmgr.ChecksumInfo) string {
	if c == nil {
		return ""
	}
	return c.Checksum
}

func checksumWithAlg(c *sessionmgr.ChecksumInfo) string {
	if c == nil {
		return ""
	}
	return c.Algorithm + ":" + c.Checksum
}
