package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"clfs/sessionmgr"
)

// shutdownGrace is how long Close lets requests in flight finish before
// cutting them off.
const shutdownGrace = 5 * time.Second

// Server serves a handler on one listener until Close, and knows when the
// last request is done with the session manager.
type Server struct {
	srv    *http.Server
	log    *slog.Logger
	served chan struct{} // closed when Serve returns

	mu       sync.Mutex
	closed   bool           // GUARDED_BY(mu)
	inFlight sync.WaitGroup // Add only under mu while !closed

	closeOnce sync.Once
}

// Serve answers requests on ln with h until Close.
func Serve(ln net.Listener, h http.Handler, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{log: log, served: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           s.track(h),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return s
}

// track counts handlers, so that Close can wait for them before the
// manager is closed.
func (s *Server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			writeError(restDialect, w, &sessionmgr.Error{Kind: sessionmgr.KindResourceInaccessible, Err: errServerClosing, Msg: "the server is shutting down"})
			return
		}
		s.inFlight.Add(1)
		s.mu.Unlock()
		defer s.inFlight.Done()
		h.ServeHTTP(w, r)
	})
}

// Close stops serving: requests in flight get shutdownGrace to finish,
// then their connections are cut; it returns once every handler is done
// with the session manager. It closes the listener.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		if err := s.srv.Shutdown(ctx); err != nil {
			s.log.Warn("API listener: cutting requests still running", "err", err)
			s.srv.Close()
		}
		cancel()
		<-s.served
		s.inFlight.Wait()
	})
	return nil
}
