package mount

import (
	"errors"

	"clfs/mount/api"
	"clfs/mount/control"
	"clfs/sessionmgr"
)

// ErrMountRunning is returned when another daemon serves the home.
var ErrMountRunning = control.ErrMountRunning

// Server serves a home's session manager without a mount: on the HTTPS
// API and on the control socket (clfs serve).
type Server struct {
	Manager *sessionmgr.Manager
	control *control.Server
	api     *api.Server
}

// Serve opens the home's session manager and serves it on opts.API (which
// must be set) and on the home's control socket, until Close.
func Serve(opts Options) (*Server, error) {
	if opts.API == nil {
		return nil, errors.New("serve: no API listener")
	}
	m, log, err := openHome(opts)
	if err != nil {
		opts.API.Close()
		return nil, err
	}
	ctl, err := control.Serve(m, control.SocketPath(m.Home()), api.Options{Logger: log})
	if err != nil {
		opts.API.Close()
		m.Close()
		return nil, err
	}
	return &Server{Manager: m, control: ctl, api: api.ServeHTTPS(m, opts.API, api.Options{Logger: log})}, nil
}

// Close stops both listeners, letting requests in flight finish, then
// closes the session manager.
func (s *Server) Close() error {
	return errors.Join(s.api.Close(), s.control.Close(), s.Manager.Close())
}
