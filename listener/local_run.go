package listener

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/renameio/v2"

	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/listener/balance"
	"github.com/patchbay/patchbay/model"
	"github.com/patchbay/patchbay/templates"
)

// ErrLocalLB: the local load balancer could not be checked, started or
// changed; the last good config keeps running.
var ErrLocalLB = errkind.New(errkind.Backend, "listener: local load balancer")

// localLB owns the node's local HAProxy: a process the listener runs
// itself in master-worker mode (-W), so that a node needs no unit of its
// own and tests and patchbay dev run it like production. The listener's
// run is the only writer; Report reads under mu.
type localLB struct {
	log     *slog.Logger
	metrics *Metrics
	onExit  func() // a run is queued when HAProxy dies unasked

	mu       sync.Mutex
	proc     *exec.Cmd
	exited   chan struct{} // closed when proc ends
	stopping atomic.Bool
	waiter   sync.WaitGroup // the goroutine that waits for proc
	content  []byte         // the config HAProxy runs
	routes   map[string]templates.LocalRoute
	report   LocalReport
}

func newLocalLB(log *slog.Logger, metrics *Metrics, onExit func()) *localLB {
	return &localLB{log: log.With("component", "local-lb"), metrics: metrics, onExit: onExit}
}

// Report returns the last state; nil when nothing was ever served locally.
func (lb *localLB) Report() *LocalReport {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.report.Config == "" {
		return nil
	}
	r := lb.report
	r.Running = lb.proc != nil && !isClosed(lb.exited)
	r.Routes, r.Problems = slices.Clone(r.Routes), slices.Clone(r.Problems)
	return &r
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// runsLocalLB: a simulated node (patchbay dev) only logs the manifests'
// commands, but runs its local load balancer when listener.yaml names
// the program: it binds 127.0.0.1 only and acts on nothing else.
func (l *Listener) runsLocalLB(cfg *Config) bool {
	return !l.simulated || cfg.LocalLB.Program != ""
}

// sync makes HAProxy serve what plans ask: nothing when no plan serves a
// var locally and HAProxy never ran; else render, check, then start,
// change servers over the runtime API, or reload.
func (lb *localLB) sync(ctx context.Context, cfg *Config, plans []*plan) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	withDefaults := *cfg
	withDefaults.LocalLB = cfg.localLB()
	cfg = &withDefaults
	rs := localRoutes(cfg, plans, lb.routes)
	if len(rs.routes) == 0 && lb.proc == nil {
		return
	}
	for _, p := range rs.problems {
		lb.log.Error("local route refused", "problem", p)
	}
	data := templates.LocalHAProxy{Socket: cfg.LocalLB.Socket, MaxConn: 4096, CheckInter: cfg.LocalLB.CheckInter.String(), TimeoutConnect: "2s"}
	for _, key := range slices.Sorted(maps.Keys(rs.routes)) {
		data.Routes = append(data.Routes, *rs.routes[key])
	}
	lb.note(cfg, rs, data.Routes)
	content, err := templates.RenderLocalHAProxy(data)
	if err == nil {
		err = lb.apply(ctx, cfg, content)
	}
	if err != nil {
		lb.log.Error("local load balancer not changed; the last good config keeps running", "err", err)
		lb.report.Problems = append(lb.report.Problems, err.Error())
		return
	}
	lb.routes = map[string]templates.LocalRoute{}
	for k, r := range rs.routes {
		lb.routes[k] = *r
	}
}

// note records the routes and problems for status.
func (lb *localLB) note(cfg *Config, rs routeSet, routes []templates.LocalRoute) {
	lb.report.Config, lb.report.Problems, lb.report.Routes = cfg.LocalLB.Config, rs.problems, nil
	for _, r := range routes {
		st := LocalRouteState{Key: r.Key, Port: r.Port, Mode: r.Mode, Consumers: rs.users[r.Key], Servers: []string{}}
		for _, s := range r.Servers {
			st.Servers = append(st.Servers, s.Name+" at "+s.Addr)
		}
		lb.report.Routes = append(lb.report.Routes, st)
	}
}

// apply brings HAProxy to content: a start when it does not run, nothing
// when it runs content, the runtime API when only servers changed, a
// reload otherwise or when the API fails.
func (lb *localLB) apply(ctx context.Context, cfg *Config, content []byte) error {
	running := lb.proc != nil && !isClosed(lb.exited)
	if running && bytes.Equal(content, lb.content) {
		return nil
	}
	if err := lb.check(ctx, cfg, content); err != nil {
		return err
	}
	if !running {
		return lb.start(ctx, cfg, content)
	}
	api := &balance.HAProxyAPI{Socket: cfg.LocalLB.Socket, Timeout: 5 * time.Second}
	changes, why := model.DiffHAProxy(lb.content, content)
	if why == "" {
		if err := balance.ApplyServers(ctx, changes, api, time.Duration(cfg.LocalLB.Drain)); err == nil {
			lb.report.RuntimeChanges++
			lb.metrics.HAProxyApplied("runtime")
			lb.log.Info("local servers changed over the runtime API, no reload", "added", changes.Added(), "removed", changes.Removed())
			return lb.install(cfg, content)
		} else {
			why = "runtime API failed: " + err.Error()
		}
	}
	lb.log.Info("local load balancer reloads", "why", why)
	return lb.reload(ctx, cfg, api, content)
}

// check runs haproxy -c on the staged config: a config HAProxy refuses
// is never installed.
func (lb *localLB) check(ctx context.Context, cfg *Config, content []byte) error {
	staged := cfg.LocalLB.Config + ".staged"
	if err := os.MkdirAll(filepath.Dir(staged), 0o755); err != nil {
		return fmt.Errorf("%w: %w", ErrLocalLB, err)
	}
	if err := renameio.WriteFile(staged, content, 0o600); err != nil {
		return fmt.Errorf("%w: stage %s: %w", ErrLocalLB, staged, err)
	}
	defer func() { _ = os.Remove(staged) }()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := lb.command(ctx, cfg, "-c", "-q", "-f", staged).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s -c refused the config: %w: %s", ErrLocalLB, cfg.LocalLB.Program, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// command is HAProxy with args and a clean environment: the program is
// the node's (local_lb.program), never a manifest's.
func (lb *localLB) command(ctx context.Context, cfg *Config, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, cfg.LocalLB.Program, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	return cmd
}

func (lb *localLB) install(cfg *Config, content []byte) error {
	if err := renameio.WriteFile(cfg.LocalLB.Config, content, 0o600); err != nil {
		return fmt.Errorf("%w: install %s: %w", ErrLocalLB, cfg.LocalLB.Config, err)
	}
	lb.content = content
	return nil
}
