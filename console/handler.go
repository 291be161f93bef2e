package console

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/resolver"
)

//go:embed assets
var assets embed.FS

// Handler serves the page (GET /), its state (GET /api/state, and as
// server-sent events on GET /events), explanations (GET /api/explain) and,
// with WithActions, POST /api/rollout/resume. Every request must name the
// console by an allowed host (against DNS rebinding); a POST must also
// come from the console's own origin (against cross-site requests).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/state", s.serveState)
	mux.HandleFunc("GET /events", s.serveEvents)
	mux.HandleFunc("GET /api/explain", s.serveExplain)
	mux.HandleFunc("POST /api/rollout/resume", s.serveResume)
	return s.guard(mux)
}

// guard refuses requests addressed to a host name that is not the
// console's, and state-changing ones from another origin.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.checkHost(r.Host); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := checkOrigin(r); err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) checkHost(hostport string) error {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	if strings.EqualFold(host, "localhost") || slices.ContainsFunc(s.hosts, func(h string) bool { return strings.EqualFold(h, host) }) {
		return nil
	}
	return fmt.Errorf("%w: host %q is not this console's (start it with --allow-host %s to allow it)", ErrForbidden, host, host)
}

// checkOrigin demands an Origin naming the host the request was sent to:
// browsers send it on every cross-origin and every POST request, and a
// page cannot forge it.
func checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin != "http://"+r.Host && origin != "https://"+r.Host {
		return fmt.Errorf("%w: origin %q may not change state here", ErrForbidden, origin)
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return fmt.Errorf("%w: a state-changing request must be application/json", ErrForbidden)
	}
	return nil
}

func (s *Server) serveState(w http.ResponseWriter, r *http.Request) {
	s.polled()
	s.awaitLive(r.Context()) // a poller slower than the watch window still sees the listeners'
	state, _ := s.current()
	if state == nil {
		http.Error(w, "console: no state yet; the registry has not answered", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(state)
}

// serveEvents streams the state: at once, then on every change, with a
// comment every 15 s so proxies keep the connection open.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "console: streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	ch, cancel := s.subscribe()
	defer cancel()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	flusher.Flush()
	// The first paint shows the listeners' answers, not a record that may
	// be minutes old; subscribe held the recorded state back for them.
	// The page renders the same state twice at worst, if Run also sent it.
	s.awaitLive(r.Context())
	if state, _ := s.current(); state != nil && len(ch) == 0 {
		if _, err := fmt.Fprintf(w, "event: state\ndata: %s\n\n", state); err != nil {
			return
		}
		flusher.Flush()
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case data, ok := <-ch:
			if !ok {
				return
			}
			if _, err := fmt.Fprintf(w, "event: state\ndata: %s\n\n", data); err != nil {
				return
			}
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
		}
		flusher.Flush()
	}
}

// serveExplain runs explain on the last snapshot read.
func (s *Server) serveExplain(w http.ResponseWriter, r *http.Request) {
	_, snap := s.current()
	if snap == nil {
		http.Error(w, "console: no snapshot yet", http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	x, err := resolver.Explain(snap, q.Get("federation"), q.Get("service"), q.Get("region"), q.Get("var"))
	if errors.Is(err, resolver.ErrUnknownService) || errors.Is(err, resolver.ErrUnknownVar) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(x.Redacted()) // the page shows what resolve shows
}

// serveResume clears a rollout group's halt flag, as `patchbay rollout
// resume` does.
func (s *Server) serveResume(w http.ResponseWriter, r *http.Request) {
	if !s.actions {
		http.Error(w, "console: read-only; start it with --allow-actions to resume rollouts here", http.StatusForbidden)
		return
	}
	var req struct {
		Federation string `json:"federation"`
		Group      string `json:"group"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.Group == "" {
		http.Error(w, "console: want {\"federation\": F, \"group\": G}", http.StatusBadRequest)
		return
	}
	g, err := s.reg.Rollout(manifest.FederationOf(req.Federation), req.Group)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resumed, err := g.Resume(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	s.log.Info("console: rollout group resumed", "federation", req.Federation, "group", req.Group, "was_halted", resumed, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]bool{"resumed": resumed})
}
