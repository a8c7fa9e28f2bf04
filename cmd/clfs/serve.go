package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"clfs/mount"
	"clfs/mount/api"
	"clfs/sessionmgr"
)

// apiFlags are the HTTPS API's flags, shared by serve and mount.
func apiFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "listen", Usage: "serve the vSphere REST API over HTTPS on `HOST:PORT`"},
		&cli.StringFlag{Name: "advertise", Usage: "`HOST[:PORT]` clients reach the API at, for upload and download URIs (default: the listen host, or this machine's name)"},
		&cli.StringFlag{Name: "user", EnvVars: []string{"CLFS_USER"}, Usage: "the API's user `NAME`"},
		&cli.StringFlag{Name: "password-file", Usage: "read the API's password from `FILE` (else $CLFS_PASSWORD)"},
		&cli.StringFlag{Name: "tls-cert", Usage: "serve this certificate `FILE` (PEM) instead of the home's self-signed one"},
		&cli.StringFlag{Name: "tls-key", Usage: "the private key `FILE` (PEM) of --tls-cert"},
		&cli.DurationFlag{Name: "api-session-idle", Value: api.DefaultLoginIdle, Usage: "idle lifetime of an API login"},
	}
}

// apiOptions reads the API flags; ok is false when --listen is not given.
func apiOptions(c *cli.Context) (opts api.ListenOptions, ok bool, err error) {
	if c.String("listen") == "" {
		// Not --user: CLFS_USER may be set for other reasons.
		for _, f := range []string{"advertise", "password-file", "tls-cert", "tls-key"} {
			if c.IsSet(f) {
				return opts, false, fmt.Errorf("--%s needs --listen", f)
			}
		}
		return opts, false, nil
	}
	password, err := apiPassword(c.String("password-file"))
	if err != nil {
		return opts, false, err
	}
	user := c.String("user")
	if user == "" {
		return opts, false, errors.New("the API needs a user: give --user or set CLFS_USER")
	}
	return api.ListenOptions{
		Listen: c.String("listen"), Advertise: c.String("advertise"),
		CertFile: c.String("tls-cert"), KeyFile: c.String("tls-key"),
		Credentials: api.Credentials{User: user, Password: password},
		LoginIdle:   c.Duration("api-session-idle"),
	}, true, nil
}

// apiPassword reads the password from file, else $CLFS_PASSWORD. There is
// no default: an API with a known password is an open API.
func apiPassword(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--password-file: %w", err)
		}
		// A file written by echo ends in a newline that is not part of
		// the password.
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("--password-file %s is empty", file)
		}
		return pw, nil
	}
	if pw := os.Getenv("CLFS_PASSWORD"); pw != "" {
		return pw, nil
	}
	return "", errors.New("the API needs a password: give --password-file or set CLFS_PASSWORD")
}

// logAPI says how to reach the API, with the certificate's thumbprint,
// which vCenter users check or pin. It is logged once the API and the
// control socket answer: whoever waits for the line (a script, a test)
// may then run clfs commands at once.
func logAPI(l *api.Listener, log *slog.Logger) {
	log.Info("vSphere API listening", "url", l.URL()+"/rest", "bound", l.Addr().String(), "sha1_thumbprint", l.Thumbprint())
}

func cmdServe() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "serve the home's libraries over the vSphere REST API (HTTPS), in the foreground, without a mount",
		ArgsUsage: "--listen HOST:PORT",
		Flags: append(apiFlags(),
			&cli.BoolFlag{Name: "read-only", Usage: "refuse every change"},
			&cli.DurationFlag{Name: "session-timeout", Value: sessionmgr.DefaultSessionTimeout, Usage: "idle lifetime of update and download sessions"},
			nodeLeaseFlag(), contentGraceFlag(),
		),
		Action: func(c *cli.Context) error {
			listen, _, err := apiOptions(c)
			if err != nil {
				return err
			}
			readOnly, timeout, node := c.Bool("read-only"), c.Duration("session-timeout"), nodeFlags(c)
			return runCommand(c, func(ctx context.Context, g *globals, args []string) error {
				return runServe(ctx, g, listen, readOnly, timeout, node, args)
			})
		},
	}
}

// runServe serves until ctx ends (SIGINT, SIGTERM).
func runServe(ctx context.Context, g *globals, listen api.ListenOptions, readOnly bool, timeout time.Duration, node nodeOptions, args []string) error {
	if err := wantArgs(args); err != nil {
		return err
	}
	if listen.Listen == "" {
		return usagef("--listen is required")
	}
	logger := slog.New(slog.NewTextHandler(g.stderr, nil))
	l, err := api.Listen(g.home, listen)
	if err != nil {
		return err
	}
	srv, err := mount.Serve(mount.Options{
		Home: g.home, Meta: g.meta, ReadOnly: readOnly, SessionTimeout: timeout, Logger: logger, API: l,
		NodeLease: node.Lease, ContentGrace: node.Grace,
	})
	if err != nil {
		return err
	}
	logAPI(l, logger)
	<-ctx.Done()
	logger.Info("stopping")
	return srv.Close()
}
