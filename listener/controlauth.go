package listener

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
)

// WithControlToken makes every request but GET /healthz carry
// "Authorization: Bearer TOKEN" (an empty token: none needed).
func WithControlToken(token string) ControlOption {
	return func(s *ControlServer) { s.token = token }
}

// guard refuses requests whose Host is not this endpoint's address, which
// is what a DNS-rebinding page sends (its own name, resolved to this
// host), and, with a token, requests without it.
func (s *ControlServer) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		_, onSocket := local.(*net.UnixAddr) // no browser page reaches a unix socket
		if !onSocket && !s.hostAllowed(r.Host, local) {
			s.log.Warn("control request refused: Host is not the endpoint's address", "host", r.Host, "remote", r.RemoteAddr, "path", r.URL.Path)
			http.Error(w, fmt.Sprintf("Host %q is not this control endpoint's address; use localhost or the address it listens on", r.Host), http.StatusForbidden)
			return
		}
		if s.token != "" && !(r.Method == http.MethodGet && r.URL.Path == "/healthz") && !s.tokenOK(r) {
			s.log.Warn("control request refused: no valid token", "remote", r.RemoteAddr, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="patchbay control"`)
			http.Error(w, "a valid control token is required (Authorization: Bearer, patchbay --control-token-file)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *ControlServer) tokenOK(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}

// hostAllowed reports whether host (the request's Host header) names this
// endpoint: localhost, a loopback IP, the host it was told to listen on,
// or the IP the connection reached.
func (s *ControlServer) hostAllowed(host string, local net.Addr) bool {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.Trim(name, "[]"), ".")
	if name == "" || strings.EqualFold(name, "localhost") {
		return true // without a Host there is no name to rebind
	}
	ip := net.ParseIP(name)
	if ip != nil && ip.IsLoopback() {
		return true
	}
	s.mu.Lock()
	listenHost := s.host
	s.mu.Unlock()
	if listenHost != "" && strings.EqualFold(name, listenHost) {
		return true
	}
	if ta, ok := local.(*net.TCPAddr); ok && ip != nil && ta.IP.Equal(ip) {
		return true
	}
	return false
}

// controlOptions are the control endpoint's options from cfg: its token,
// read from control_token_file.
func controlOptions(cfg *Config, log *slog.Logger) ([]ControlOption, error) {
	opts := []ControlOption{WithControlLogger(log)}
	if cfg.ControlTokenFile == "" {
		if cfg.Control != "off" && socketPath(cfg.Control) == "" {
			log.Warn("the control endpoint listens on TCP without a token: anyone who reaches it, any local user included, can pause this node and read its status; set control_token_file, or remove control to use the unix socket "+DefaultControlAddr,
				"control", cfg.Control)
		}
		return opts, nil
	}
	data, err := os.ReadFile(cfg.ControlTokenFile)
	if err != nil {
		return nil, fmt.Errorf("%w: control_token_file: %w; create it with a random token (openssl rand -hex 32 > FILE; chmod 600 FILE)", ErrConfig, err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return nil, fmt.Errorf("%w: control_token_file %s is empty; write a random token into it (openssl rand -hex 32)", ErrConfig, cfg.ControlTokenFile)
	}
	return append(opts, WithControlToken(token)), nil
}
