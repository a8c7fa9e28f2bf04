package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"
)

func cmdFsck() *cli.Command {
	return &cli.Command{
		Name:   "fsck",
		Usage:  "re-hash all committed content and check reference counts",
		Flags:  []cli.Flag{jsonFlag()},
		Action: listingAction(runFsck),
	}
}

// runFsck prints one line per problem, naming the file as LIB/ITEM/FILE,
// and a summary; any problem makes it fail, so scripts can rely on the
// exit status.
func runFsck(ctx context.Context, g *globals, opts listOptions, args []string) error {
	if err := wantArgs(args); err != nil {
		return err
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	var progress func(done, total int64)
	if g.progress {
		bar := newProgress(g, -1, "fsck")
		defer finishProgress(bar)
		progress = func(done, total int64) {
			bar.ChangeMax64(total)
			bar.Set64(done)
		}
	}
	rep, err := a.Fsck(ctx, progress)
	if err != nil {
		return err
	}
	if opts.JSON {
		if err := printJSON(g.stdout, rep); err != nil {
			return err
		}
	} else {
		for _, p := range rep.Problems {
			where := p.File
			if where == "" {
				where = p.Path
			}
			if where == "" {
				fmt.Fprintln(g.stdout, p.Msg)
			} else {
				fmt.Fprintf(g.stdout, "%s: %s\n", where, p.Msg)
			}
		}
		fmt.Fprintf(g.stdout, "%d files, %d blobs, %d bytes checked: %d problems\n",
			rep.FilesChecked, rep.BlobsChecked, rep.BytesChecked, len(rep.Problems))
	}
	if n := len(rep.Problems); n > 0 {
		return fmt.Errorf("fsck found %d problems", n)
	}
	return nil
}
