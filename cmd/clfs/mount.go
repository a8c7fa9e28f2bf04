package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/urfave/cli/v2"

	"clfs/mount"
	"clfs/mount/api"
	"clfs/sessionmgr"
)

// daemonMemoryLimit is the Go heap the mount daemon aims to stay under.
const daemonMemoryLimit = 64 << 20

type mountOptions struct {
	ReadOnly       bool
	AllowOther     bool
	Debug          bool
	NoXattr        bool
	VerifyReads    bool
	SessionTimeout time.Duration
	CPUProfile     string
	API            *api.ListenOptions // nil: no HTTPS API
	Node           nodeOptions
}

func cmdMount() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount the home's libraries at MOUNTPOINT, in the foreground until unmounted",
		ArgsUsage: "MOUNTPOINT",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "read-only", Usage: "refuse every change (EROFS)"},
			&cli.BoolFlag{Name: "allow-other", Usage: "let other users than the mounting one in"},
			&cli.BoolFlag{Name: "debug", Usage: "trace every FUSE request on stderr"},
			&cli.BoolFlag{Name: "no-xattr", Usage: "no extended attributes at all (no user.clfs.*), sparing the kernel's probe before each write"},
			&cli.BoolFlag{Name: "verify-reads", Usage: "read every file through the daemon, checked against its SHA-256 as it is read to the end (EIO if damaged), instead of FUSE passthrough"},
			&cli.DurationFlag{Name: "session-timeout", Value: sessionmgr.DefaultSessionTimeout, Usage: "idle lifetime of sessions"},
			nodeLeaseFlag(), contentGraceFlag(),
			// For profiling the daemon under a workload (clfsbench, pprof).
			&cli.StringFlag{Name: "cpuprofile", Hidden: true, Usage: "write a CPU profile of the daemon to `FILE` until unmounted"},
		}, apiFlags()...),
		Action: func(c *cli.Context) error {
			opts := mountOptions{
				ReadOnly: c.Bool("read-only"), AllowOther: c.Bool("allow-other"),
				Debug: c.Bool("debug"), NoXattr: c.Bool("no-xattr"), VerifyReads: c.Bool("verify-reads"), SessionTimeout: c.Duration("session-timeout"),
				CPUProfile: c.String("cpuprofile"), Node: nodeFlags(c),
			}
			listen, ok, err := apiOptions(c)
			if err != nil {
				return err
			}
			if ok {
				opts.API = &listen
			}
			return runCommand(c, func(ctx context.Context, g *globals, args []string) error {
				return runMount(ctx, g, opts, args)
			})
		},
	}
}

// runMount mounts and serves until the filesystem is unmounted from
// outside (umount, fusermount3 -u) or ctx ends (SIGINT, SIGTERM), then
// unmounts cleanly and returns nil.
func runMount(ctx context.Context, g *globals, opts mountOptions, args []string) error {
	if err := wantArgs(args, "MOUNTPOINT"); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(g.stderr, nil))
	if os.Getenv("GOMEMLIMIT") == "" {
		// The daemon's live heap is 30-60 MiB (Badger's memtable and
		// caches, buffers, the kernel's nodes); without a limit the
		// collector lets it double between cycles (a tar of small
		// files peaked at 220 MiB of RSS). Soft: the limit only makes
		// the collector run sooner, and below the live heap it would
		// run all the time (48 MiB cost a quarter of tar's speed).
		debug.SetMemoryLimit(daemonMemoryLimit)
	}
	if opts.CPUProfile != "" {
		f, err := os.Create(opts.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	mo := mount.Options{
		Mountpoint: args[0], Home: g.home, Meta: g.meta,
		ReadOnly: opts.ReadOnly, AllowOther: opts.AllowOther, Debug: opts.Debug, NoXattr: opts.NoXattr,
		VerifyReads: opts.VerifyReads, SessionTimeout: opts.SessionTimeout, Logger: logger,
		NodeLease: opts.Node.Lease, ContentGrace: opts.Node.Grace,
	}
	if opts.API != nil {
		// Checked before binding, so that a bad mountpoint does not
		// make a certificate or hold a port.
		if err := mount.CheckMountpoint(args[0]); err != nil {
			return err
		}
		l, err := api.Listen(g.home, *opts.API)
		if err != nil {
			return err
		}
		mo.API = l
	}
	mt, err := mount.Start(mo)
	if err != nil {
		return err
	}
	if mo.API != nil {
		logAPI(mo.API, logger)
	}
	logger.Info("mounted", "mountpoint", args[0], "home", g.home)
	done := make(chan error, 1)
	go func() { done <- mt.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		logger.Info("unmounting", "mountpoint", args[0])
		if err := mt.Unmount(); err != nil {
			return err
		}
		return <-done
	}
}
