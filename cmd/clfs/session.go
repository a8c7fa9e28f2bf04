package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"clfs/mount/api"
	"clfs/sessionmgr"
)

// Session commands take the id of either kind of session: update and
// download sessions have distinct ids, so each command tries the update
// session and, when there is none, the download session.

func cmdSession() *cli.Command {
	idCommand := func(name, usage string, run func(ctx context.Context, g *globals, args []string) error) *cli.Command {
		return &cli.Command{
			Name:      name,
			Usage:     usage,
			ArgsUsage: "ID",
			Action: func(c *cli.Context) error {
				return runCommand(c, run)
			},
		}
	}
	return &cli.Command{
		Name:  "session",
		Usage: "list, inspect and end update and download sessions",
		Subcommands: []*cli.Command{
			{
				Name:  "ls",
				Usage: "list update and download sessions",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "item", Usage: "only the sessions of `LIB/ITEM`"},
					jsonFlag(),
				},
				Action: func(c *cli.Context) error {
					opts := sessionLsOptions{Item: c.String("item"), JSON: c.Bool("json")}
					return runCommand(c, func(ctx context.Context, g *globals, args []string) error {
						return runSessionLs(ctx, g, opts, args)
					})
				},
			},
			{
				Name:      "info",
				Usage:     "show a session",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{jsonFlag()},
				Action:    listingAction(runSessionInfo),
			},
			{
				Name:      "keep-alive",
				Usage:     "keep an ACTIVE session from expiring, optionally recording progress",
				ArgsUsage: "ID",
				Flags: []cli.Flag{
					&cli.Int64Flag{Name: "progress", Usage: "client progress `N` (0..100)"},
				},
				Action: func(c *cli.Context) error {
					var opts sessionKeepAliveOptions
					if c.IsSet("progress") {
						p := c.Int64("progress")
						opts.Progress = &p
					}
					return runCommand(c, func(ctx context.Context, g *globals, args []string) error {
						return runSessionKeepAlive(ctx, g, opts, args)
					})
				},
			},
			idCommand("cancel", "cancel an ACTIVE session", runSessionCancel),
			{
				Name:      "fail",
				Usage:     "put an ACTIVE session in ERROR with a message",
				ArgsUsage: "ID --message TEXT",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "message", Usage: "the client's error `TEXT` (required)"},
				},
				Action: func(c *cli.Context) error {
					opts := sessionFailOptions{Message: c.String("message")}
					return runCommand(c, func(ctx context.Context, g *globals, args []string) error {
						return runSessionFail(ctx, g, opts, args)
					})
				},
			},
			idCommand("rm", "delete a session (update sessions once they ended)", runSessionRm),
		},
	}
}

// updateSessionRecord and downloadSessionRecord are a session as --json
// prints it: the API's object plus its kind.
type updateSessionRecord struct {
	Type string `json:"type"`
	*sessionmgr.UpdateSession
}

type downloadSessionRecord struct {
	Type string `json:"type"`
	*sessionmgr.DownloadSession
}

const (
	kindUpdate   = "update"
	kindDownload = "download"
)

// sessionView is what the table shows of either kind.
type sessionView struct {
	ID, Type, ItemID, ContentVersion string
	State                            sessionmgr.State
	Progress, Bytes                  int64
	Expires                          string
	Error                            *sessionmgr.Message
}

func updateView(s *sessionmgr.UpdateSession) sessionView {
	return sessionView{
		ID: s.ID, Type: kindUpdate, ItemID: s.LibraryItemID, ContentVersion: s.LibraryItemContentVersion,
		State: s.State, Progress: s.ClientProgress, Bytes: s.BytesTransferred,
		Expires: fmtTime(s.ExpirationTime), Error: s.ErrorMessage,
	}
}

func downloadView(s *sessionmgr.DownloadSession) sessionView {
	return sessionView{
		ID: s.ID, Type: kindDownload, ItemID: s.LibraryItemID, ContentVersion: s.LibraryItemContentVersion,
		State: s.State, Progress: s.ClientProgress, Bytes: s.BytesTransferred,
		Expires: fmtTime(s.ExpirationTime), Error: s.ErrorMessage,
	}
}

// onSession runs update against the update session id and, if there is
// no such session, download against the download session.
func onSession(id string, update, download func() error) error {
	err := update()
	if !errors.Is(err, sessionmgr.ErrNotFound) {
		return err
	}
	err = download()
	if errors.Is(err, sessionmgr.ErrNotFound) {
		return &sessionmgr.Error{Kind: sessionmgr.KindNotFound, Msg: fmt.Sprintf("no update or download session %s", id), Err: err}
	}
	return err
}

// itemLabels names items as LIB/ITEM for tables, asking the API once per
// item.
type itemLabels struct {
	ctx    context.Context
	a      service
	labels map[string]string
}

func (l *itemLabels) label(itemID string) string {
	if itemID == "" {
		return ""
	}
	if s, ok := l.labels[itemID]; ok {
		return s
	}
	s := itemID
	if it, err := api.Call(l.ctx, l.a, api.GetItem, api.ByID{ID: itemID}); err == nil {
		s = it.Name
		if lib, err := api.Call(l.ctx, l.a, api.GetLibrary, api.ByID{ID: it.LibraryID}); err == nil {
			s = lib.Name + "/" + it.Name
		}
	}
	if l.labels == nil {
		l.labels = map[string]string{}
	}
	l.labels[itemID] = s
	return s
}

type sessionLsOptions struct {
	Item string // LIB/ITEM, or "" for all
	JSON bool
}

func runSessionLs(ctx context.Context, g *globals, opts sessionLsOptions, args []string) error {
	if err := wantArgs(args); err != nil {
		return err
	}
	if opts.Item != "" {
		if _, _, err := parseItemPath(opts.Item); err != nil {
			return err
		}
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	var itemID string
	if opts.Item != "" {
		_, it, err := resolveItem(ctx, a, opts.Item)
		if err != nil {
			return err
		}
		itemID = it.ID
	}
	ups, err := api.Call(ctx, a, api.ListUpdateSessions, api.SessionsOf{ItemID: itemID})
	if err != nil {
		return err
	}
	downs, err := api.Call(ctx, a, api.ListDownloadSessions, api.SessionsOf{ItemID: itemID})
	if err != nil {
		return err
	}
	if opts.JSON {
		records := []any{}
		for i := range ups {
			records = append(records, updateSessionRecord{kindUpdate, &ups[i]})
		}
		for i := range downs {
			records = append(records, downloadSessionRecord{kindDownload, &downs[i]})
		}
		return printJSON(g.stdout, records)
	}
	var views []sessionView
	for i := range ups {
		views = append(views, updateView(&ups[i]))
	}
	for i := range downs {
		views = append(views, downloadView(&downs[i]))
	}
	labels := &itemLabels{ctx: ctx, a: a}
	t := newTable(g.stdout, "ID", "TYPE", "ITEM", "STATE", "PROGRESS", "BYTES", "EXPIRES")
	for _, v := range views {
		t.row(v.ID, v.Type, labels.label(v.ItemID), string(v.State), fmtInt(v.Progress)+"%", fmtInt(v.Bytes), v.Expires)
	}
	return t.flush()
}

func runSessionInfo(ctx context.Context, g *globals, opts listOptions, args []string) error {
	if err := wantArgs(args, "ID"); err != nil {
		return err
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	id := args[0]
	var record any
	var view sessionView
	err = onSession(id, func() error {
		s, err := api.Call(ctx, a, api.GetUpdateSession, api.ByID{ID: id})
		if err == nil {
			record, view = updateSessionRecord{kindUpdate, s}, updateView(s)
		}
		return err
	}, func() error {
		s, err := api.Call(ctx, a, api.GetDownloadSession, api.ByID{ID: id})
		if err == nil {
			record, view = downloadSessionRecord{kindDownload, s}, downloadView(s)
		}
		return err
	})
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(g.stdout, record)
	}
	fields := [][2]string{
		{"ID", view.ID},
		{"Type", view.Type},
		{"Item", (&itemLabels{ctx: ctx, a: a}).label(view.ItemID)},
		{"Item content version", view.ContentVersion},
		{"State", string(view.State)},
		{"Client progress", fmtInt(view.Progress) + "%"},
		{"Bytes transferred", fmtInt(view.Bytes)},
		{"Expires", view.Expires},
	}
	if view.Error != nil {
		fields = append(fields, [2]string{"Error", view.Error.DefaultMessage})
	}
	return printFields(g.stdout, fields)
}

type sessionKeepAliveOptions struct {
	Progress *int64 // nil: extend only
}

func runSessionKeepAlive(ctx context.Context, g *globals, opts sessionKeepAliveOptions, args []string) error {
	if err := wantArgs(args, "ID"); err != nil {
		return err
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	id := args[0]
	return onSession(id,
		func() error {
			return api.Run(ctx, a, api.KeepAliveUpdateSession, api.UpdateSessionKeepAlive{ID: id, Progress: opts.Progress})
		},
		func() error {
			return api.Run(ctx, a, api.KeepAliveDownloadSession, api.DownloadSessionKeepAlive{ID: id, Progress: opts.Progress})
		})
}

func runSessionCancel(ctx context.Context, g *globals, args []string) error {
	if err := wantArgs(args, "ID"); err != nil {
		return err
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	id := args[0]
	return onSession(id,
		func() error { return api.Run(ctx, a, api.CancelUpdateSession, api.ByID{ID: id}) },
		func() error { return api.Run(ctx, a, api.CancelDownloadSession, api.ByID{ID: id}) })
}

type sessionFailOptions struct {
	Message string
}

func runSessionFail(ctx context.Context, g *globals, opts sessionFailOptions, args []string) error {
	if err := wantArgs(args, "ID"); err != nil {
		return err
	}
	if opts.Message == "" {
		return usagef("--message is required")
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	id := args[0]
	return onSession(id,
		func() error {
			return api.Run(ctx, a, api.FailUpdateSession, api.SessionFail{ID: id, Message: opts.Message})
		},
		func() error {
			return api.Run(ctx, a, api.FailDownloadSession, api.SessionFail{ID: id, Message: opts.Message})
		})
}

func runSessionRm(ctx context.Context, g *globals, args []string) error {
	if err := wantArgs(args, "ID"); err != nil {
		return err
	}
	a, err := g.connect()
	if err != nil {
		return err
	}
	id := args[0]
	return onSession(id,
		func() error { return api.Run(ctx, a, api.DeleteUpdateSession, api.ByID{ID: id}) },
		func() error { return api.Run(ctx, a, api.DeleteDownloadSession, api.ByID{ID: id}) })
}
