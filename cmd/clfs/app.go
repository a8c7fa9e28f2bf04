package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"clfs/mount/api"
	"clfs/mount/control"
	"clfs/sessionmgr"
)

// Main runs the clfs command line; args are as in os.Args. It returns the
// error to report: main prints it as one line and exits 1.
func Main(args []string) error {
	if home, mountpoint, options, ok := fstabCall(args); ok {
		return runFstab(home, mountpoint, options)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr)
}

// run is Main with its streams injected, for tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		args = []string{"clfs"}
	}
	app := newApp(stdout, stderr)
	return app.RunContext(ctx, interspersed(app, args))
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "clfs",
		HelpName:  "clfs",
		Usage:     "a content library you can mount",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:        "home",
				Usage:       "clfs home `DIR` (catalog and default storage)",
				DefaultText: "$CLFS_HOME, else $XDG_DATA_HOME/clfs, else ~/.local/share/clfs",
			},
			&cli.StringFlag{
				Name:        "meta",
				Usage:       "catalog `URL`: badger://DIR or etcd://HOST:PORT[,HOST:PORT...]/PREFIX; the home remembers it",
				DefaultText: "$CLFS_META, else the one the home remembers, else badger://HOME/meta",
			},
		},
		Commands: []*cli.Command{
			cmdLibrary(), cmdItem(), cmdFile(), cmdStorage(), cmdSession(), cmdFsck(), cmdCounters(), cmdStatus(), cmdMount(), cmdServe(),
		},
		// A checksum or a description may contain commas.
		DisableSliceFlagSeparator: true,
		// Errors are returned to Main, never turned into os.Exit here.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   flagUsageError,
	}
	app.Action = groupAction(app.Commands)
	for _, c := range app.Commands {
		setupCommand(c)
	}
	return app
}

// setupCommand gives every command the same error behaviour: bad flags and
// missing or unknown sub-commands are one-line usage errors, not a help
// page with exit status 0.
func setupCommand(c *cli.Command) {
	c.OnUsageError = flagUsageError
	if len(c.Subcommands) > 0 {
		c.Action = groupAction(c.Subcommands)
		for _, s := range c.Subcommands {
			setupCommand(s)
		}
	}
}

func flagUsageError(cCtx *cli.Context, err error, _ bool) error {
	return &usageError{msg: err.Error(), usage: usageLine(cCtx.Command)}
}

// groupAction runs for a command group given no known sub-command.
func groupAction(subs []*cli.Command) cli.ActionFunc {
	return func(cCtx *cli.Context) error {
		var names []string
		for _, s := range subs {
			names = append(names, s.Name)
		}
		usage := usageLine(cCtx.Command) + " {" + strings.Join(names, "|") + "} ..."
		if cCtx.Args().Present() {
			return &usageError{msg: fmt.Sprintf("unknown command %q", cCtx.Args().First()), usage: usage}
		}
		return &usageError{msg: "missing command", usage: usage}
	}
}

func usageLine(c *cli.Command) string {
	if c == nil {
		return "clfs"
	}
	name := c.HelpName
	if name == "" {
		name = c.Name
	}
	if c.ArgsUsage != "" {
		name += " " + c.ArgsUsage
	}
	return name
}

// usageError is a command line the user got wrong. It prints as one line
// that ends with the command's synopsis.
type usageError struct {
	msg   string
	usage string
}

func (e *usageError) Error() string {
	if e.usage == "" {
		return e.msg
	}
	return e.msg + " (usage: " + e.usage + ")"
}

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// wantArgs checks that args has exactly one value per name.
func wantArgs(args []string, names ...string) error {
	if len(args) < len(names) {
		return usagef("missing %s", strings.Join(names[len(args):], " "))
	}
	if len(args) > len(names) {
		return usagef("unexpected argument %q", args[len(names)])
	}
	return nil
}

// globals is what every command runs with: where it prints, and the API,
// opened on first use so that a usage error never touches the home.
type globals struct {
	home     string
	meta     string // catalog URL; "" is the home's own
	stdout   io.Writer
	stderr   io.Writer
	progress bool // draw progress bars on stderr (a terminal)

	conn service // nil until connect
}

// connect returns the API over the home directory, once: the control
// socket of the mount serving it, or else the catalog, opened here.
func (g *globals) connect() (service, error) {
	if g.conn != nil {
		return g.conn, nil
	}
	c, err := control.Dial(g.home)
	if err == nil {
		g.conn = remoteService{c}
		return g.conn, nil
	}
	if !errors.Is(err, control.ErrNoMount) {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	m, err := sessionmgr.Open(sessionmgr.Options{Home: g.home, Meta: g.meta, Logger: logger})
	if err != nil {
		return nil, err
	}
	g.conn = localService{api.Local{M: m}}
	return g.conn, nil
}

func (g *globals) close() error {
	if g.conn == nil {
		return nil
	}
	err := g.conn.Close()
	g.conn = nil
	return err
}

// runCommand is the Action of every leaf command: it builds the globals
// from the parsed flags, runs fn, closes the API and completes usage
// errors with the command's synopsis.
func runCommand(cCtx *cli.Context, fn func(ctx context.Context, g *globals, args []string) error) (err error) {
	home, err := homeDir(cCtx.String("home"), os.Getenv)
	if err != nil {
		return err
	}
	g := &globals{
		home:     home,
		meta:     metaURL(cCtx.String("meta"), os.Getenv),
		stdout:   cCtx.App.Writer,
		stderr:   cCtx.App.ErrWriter,
		progress: isTerminal(cCtx.App.ErrWriter),
	}
	defer func() {
		if cerr := g.close(); err == nil {
			err = cerr
		}
	}()
	err = fn(cCtx.Context, g, cCtx.Args().Slice())
	var ue *usageError
	if errors.As(err, &ue) && ue.usage == "" {
		ue.usage = usageLine(cCtx.Command)
	}
	return err
}

// homeDir picks the home directory: --home, $CLFS_HOME,
// $XDG_DATA_HOME/clfs, ~/.local/share/clfs.
func homeDir(flag string, getenv func(string) string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if h := getenv("CLFS_HOME"); h != "" {
		return h, nil
	}
	if x := getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "clfs"), nil
	}
	h := getenv("HOME")
	if h == "" {
		return "", errors.New("no home directory: set --home, $CLFS_HOME or $HOME")
	}
	return filepath.Join(h, ".local", "share", "clfs"), nil
}

// metaURL picks the catalog URL: --meta, else $CLFS_META, else "" (the
// home's: the URL it remembers, else Badger in HOME/meta).
func metaURL(flag string, getenv func(string) string) string {
	if flag != "" {
		return flag
	}
	return getenv("CLFS_META")
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// interspersed reorders a command line so that urfave/cli v2, which stops
// parsing flags at the first positional argument, accepts flags anywhere:
// `clfs file ls lib/item --json` becomes `clfs file ls --json -- lib/item`.
// It walks the command tree as cli will; each flag (with its value, if it
// takes one) moves to the deepest command on the path that defines it, so
// global flags work after the sub-command too. Positional arguments keep
// their order and go after a `--`, so one that starts with '-' (after a
// `--` of the user's) stays an argument. Unknown flags stay where they are
// and cli reports them.
func interspersed(app *cli.App, args []string) []string {
	type level struct {
		name  string // "" for the root
		flags []cli.Flag
		given []string
	}
	levels := []*level{{flags: app.Flags}}
	subs := app.Commands
	var positional []string
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			positional = append(positional, rest[i+1:]...)
			break
		}
		if len(a) > 1 && a[0] == '-' {
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			at, f := len(levels)-1, cli.Flag(nil)
			for j := len(levels) - 1; j >= 0 && f == nil; j-- {
				if f = lookupFlag(levels[j].flags, name); f != nil {
					at = j
				}
			}
			levels[at].given = append(levels[at].given, a)
			if f != nil && takesValue(f) && !hasValue && i+1 < len(rest) {
				i++
				levels[at].given = append(levels[at].given, rest[i])
			}
			continue
		}
		if len(positional) == 0 {
			if c := lookupCommand(subs, a); c != nil {
				levels = append(levels, &level{name: a, flags: c.Flags})
				subs = c.Subcommands
				continue
			}
		}
		positional = append(positional, a)
	}
	out := []string{args[0]}
	for i, l := range levels {
		if i > 0 {
			out = append(out, l.name)
		}
		out = append(out, l.given...)
	}
	if len(positional) > 0 {
		out = append(out, "--")
		out = append(out, positional...)
	}
	return out
}

func lookupFlag(flags []cli.Flag, name string) cli.Flag {
	if cli.HelpFlag != nil {
		flags = append(flags[:len(flags):len(flags)], cli.HelpFlag)
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func takesValue(f cli.Flag) bool {
	d, ok := f.(cli.DocGenerationFlag)
	return ok && d.TakesValue()
}

func lookupCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// errorLine is how main prints an error: one line.
func errorLine(err error) string {
	return "clfs: " + strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}
