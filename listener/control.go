package listener

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Controller is what the control endpoint drives: the daemon implements it.
// Its methods must not block for long; they run in the HTTP handlers.
type Controller interface {
	// Pause stops provision runs from starting; triggers are remembered.
	Pause()
	// Resume lets runs start again and queues one at once.
	Resume()
	// Provision queues a run as soon as the throttle allows.
	Provision()
	// Report is the listener's view of its node for GET /status.
	Report() Report
}

// controlShutdownTimeout bounds how long Serve waits for requests in flight
// once its context is done; the handlers only hand work to the daemon, so a
// request still running after this is stuck.
const controlShutdownTimeout = 5 * time.Second

// ControlServer is the listener's HTTP control endpoint:
//
//	GET  /healthz    200 "ok"
//	GET  /status     the Report as JSON
//	GET  /metrics    Prometheus metrics
//	POST /pause      stop starting runs (202)
//	POST /resume     start again, with one run at once (202)
//	POST /provision  run as soon as the throttle allows (202)
//
// By default it is a unix socket of mode 0600 (DefaultControlAddr): only
// the listener's user may connect. On TCP, whoever reaches it can pause the
// node and read its status unless a token (WithControlToken) is required,
// which the daemon warns about. Browsers are kept out: cross-origin
// requests from web pages are refused, and so are requests whose Host is not the endpoint's
// address (DNS rebinding), so a page open on the host cannot reach it.
type ControlServer struct {
	c   Controller
	m   *Metrics
	log *slog.Logger

	token string // required of every request but GET /healthz; "" for none

	mu   sync.Mutex
	ln   net.Listener
	host string // the host Listen was given, which Host headers may name
	sock string // the unix socket's path; "" on TCP
}

// ControlOption configures a ControlServer.
type ControlOption func(*ControlServer)

// WithControlLogger sets the logger (default slog.Default()).
func WithControlLogger(l *slog.Logger) ControlOption {
	return func(s *ControlServer) { s.log = l }
}

// NewControlServer returns a control endpoint for c that serves m at
// /metrics (a nil m answers 404 there). Listen, then Serve, start it.
func NewControlServer(c Controller, m *Metrics, opts ...ControlOption) *ControlServer {
	s := &ControlServer{c: c, m: m, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Listen binds addr ("127.0.0.1:7676"; port 0 picks a free one) and returns
// the bound address. Binding apart from serving lets the daemon fail at
// start on a port in use, and callers learn a picked port.
func (s *ControlServer) Listen(addr string) (net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil, fmt.Errorf("listener: control endpoint already listens at %s", s.ln.Addr())
	}
	if path := socketPath(addr); path != "" {
		ln, err := listenUnix(path)
		if err != nil {
			return nil, err
		}
		s.ln, s.sock = ln, path
		return &net.UnixAddr{Name: path, Net: "unix"}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err // net's error names the address and the cause; the caller says which setting to change
	}
	s.ln = ln
	s.host, _, _ = net.SplitHostPort(addr)
	return ln.Addr(), nil
}

// Addr is the address Listen bound, "" before.
func (s *ControlServer) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	if s.sock != "" {
		return unixScheme + s.sock
	}
	return s.ln.Addr().String()
}

// Serve answers requests on the address Listen bound until ctx is done,
// then stops accepting, lets requests in flight finish (for a few seconds
// at most) and returns nil. It returns an error only when serving fails.
func (s *ControlServer) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln, sock := s.ln, s.sock
	s.mu.Unlock()
	if ln == nil {
		return errors.New("listener: control endpoint: Serve before Listen")
	}
	if sock != "" {
		defer removeSocket(sock, ln)
	}
	srv := &http.Server{
		Handler: s.guard(http.NewCrossOriginProtection().Handler(s.routes())),
		// Bounds against slow or stuck clients, which would otherwise hold
		// connections of a daemon that runs for months.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1) // buffered: the goroutine never blocks on it
	go func() { served <- srv.Serve(ln) }()
	s.log.Debug("control endpoint serving", "addr", ln.Addr().String())

	select {
	case err := <-served: // Serve fails only on a broken listener
		return fmt.Errorf("listener: control endpoint %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	// ctx is done: shut down on a fresh context, bounded.
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), controlShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		s.log.Warn("control endpoint: requests still running at shutdown; closing them", "err", err)
		_ = srv.Close()
	}
	// http.ErrServerClosed once Shutdown or Close has run.
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("listener: control endpoint %s: %w", ln.Addr(), err)
	}
	return nil
}

func (s *ControlServer) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /status", s.status)
	if s.m != nil {
		mux.Handle("GET /metrics", s.m.Handler())
	}
	for action, do := range map[string]func(){"pause": s.c.Pause, "resume": s.c.Resume, "provision": s.c.Provision} {
		mux.HandleFunc("POST /"+action, s.action(action, do))
	}
	return mux
}

func (s *ControlServer) status(w http.ResponseWriter, _ *http.Request) {
	report := s.c.Report()
	s.mu.Lock()
	authenticated := s.sock != "" || s.token != "" // the socket's mode, or the guard's token
	s.mu.Unlock()
	if !authenticated {
		report = report.withoutOutput() // any local user reaches it: results and reasons only
	}
	data, err := json.MarshalIndent(report, "", "  ")
	if err != nil { // a Report holds strings, numbers and times: cannot happen
		s.log.Error("control endpoint: encode status", "err", err)
		http.Error(w, "encode status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // always the live state
	_, _ = w.Write(append(data, '\n'))
}

// ActionResponse is the body of a POST to /pause, /resume or /provision.
type ActionResponse struct {
	OK     bool   `json:"ok"`
	Action string `json:"action"`
}

// action answers 202: the controller only queues the change, which the
// daemon applies in its own time.
func (s *ControlServer) action(name string, do func()) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.log.Info("control request", "action", name, "remote", r.RemoteAddr)
		do()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(ActionResponse{OK: true, Action: name})
	}
}
