package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// listenerConfig is what a case varies in a host's listener.yaml.
type listenerConfig struct {
	antiEntropy time.Duration
	minInterval time.Duration
	burst       int
}

func (c *cluster) writeListenerConfig(h *host, lc listenerConfig) (string, error) {
	h.dir = filepath.Join(c.dir, h.name)
	h.root = filepath.Join(h.dir, "root")
	for _, d := range []string{h.root, filepath.Join(h.dir, "state")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	cfg := fmt.Sprintf(`consul-addr: 127.0.0.1:8500
nats-url: %s
log-level: debug
node: %s
address: %s
state_dir: %s
root: %s
control: %s
anti_entropy: %s
shutdown_timeout: 5s
queue: {quiet: 1s, max_wait: 10s, min_interval: %s, burst: %d}
retry: {initial: 1s, max: 5s}
allow: {commands: [[sh, -c, "**"]]}   # the slow check of app's manifest is a shell script
services:
  - service: backend
    port: 9000
  - service: app
    provision:
      command: [sh, -c, 'echo "$(date +%%s.%%N) $PATCHBAY_REVISION" >>%s']
`, c.natsURL(), h.name, h.ip, filepath.Join(h.dir, "state"), h.root, h.control(),
		lc.antiEntropy, lc.minInterval, lc.burst, filepath.Join(h.dir, "runs.log"))
	path := filepath.Join(h.dir, "listener.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

// startListener (re)starts a host's listener with lc.
func (c *cluster) startListener(h *host, lc listenerConfig) error {
	path, err := c.writeListenerConfig(h, lc)
	if err != nil {
		return err
	}
	if h.listener == nil {
		h.listener = c.newProc(h.name+"-listener", h.name, c.bin("patchbay"), "listen", "--config", path)
	}
	if err := h.listener.stop(10 * time.Second); err != nil {
		return err
	}
	return h.listener.start()
}

// listenerStatus is the part of a listener's /status the suite reads.
type listenerStatus struct {
	Instances []struct {
		Service    string `json:"service"`
		Registered bool   `json:"registered"`
	} `json:"instances"`
	LastRun *struct {
		Services []struct {
			Service  string `json:"service"`
			Revision uint64 `json:"revision"`
		} `json:"services"`
	} `json:"last_run"`
}

var statusClient = &http.Client{Timeout: 2 * time.Second}

func status(ctx context.Context, h *host) (listenerStatus, error) {
	var st listenerStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.control()+"/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := statusClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s /status: %s", h.name, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// registered says whether h's backend instance (the one service it hosts
// with a port) is registered: its key in Consul is held by a session, and
// its listener says so.
func (c *cluster) registered(ctx context.Context, h *host) error {
	cl, err := c.consul()
	if err != nil {
		return err
	}
	key := "patchbay/registry/instances/default/backend/backend@" + h.name + ":9000"
	pair, _, err := cl.KV().Get(key, nil)
	if err != nil {
		return err
	}
	if pair == nil || pair.Session == "" {
		return fmt.Errorf("%s: no session holds %s", h.name, key)
	}
	st, err := status(ctx, h)
	if err != nil {
		return err
	}
	for _, in := range st.Instances {
		if in.Service == "backend" {
			if !in.Registered {
				return fmt.Errorf("%s: its instance of backend is not registered", h.name)
			}
			return nil
		}
	}
	return fmt.Errorf("%s reports no instance of backend", h.name)
}

func (c *cluster) allRegistered(ctx context.Context) error {
	for _, h := range c.hosts {
		if err := c.registered(ctx, h); err != nil {
			return err
		}
	}
	return nil
}
