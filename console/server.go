// Package console is patchbay's web console: one page, served from the
// binary, that shows the cluster live — the dependency graph of every
// federation, each service's instances and bindings with the reasons
// behind them, every node's last run and the halted rollout groups.
//
// The server keeps one State, rebuilt whenever the registry's inputs or
// bindings change (two blocking queries) or, for node statuses and halts,
// every refresh interval, and pushes it to pages over server-sent events.
// It is read-only unless WithActions: then a page may resume a halted
// rollout group, and only from the console's own origin.
package console

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolver"
)

// ErrForbidden: a request came through another host name (DNS
// rebinding) or from another origin (a cross-site request).
var ErrForbidden = errkind.New(errkind.Input, "console: forbidden")

// Registry is what the console reads; *registry.Client is one.
type Registry interface {
	Snapshot(ctx context.Context) (*resolver.Snapshot, error)
	Watch(ctx context.Context, index uint64) (uint64, error)
	Bindings(ctx context.Context) ([]registry.StoredBinding, []resolver.SkippedKey, uint64, error)
	WatchBindings(ctx context.Context, index uint64) (uint64, error)
	Statuses(ctx context.Context) ([]registry.Status, []resolver.SkippedKey, error)
	Halts(ctx context.Context) (map[string]registry.Halt, error)
	Rollout(fed, group string) (*registry.RolloutGroup, error)
}

// Server is the console. Run keeps its state current; Handler serves it.
type Server struct {
	reg     Registry
	log     *slog.Logger
	refresh time.Duration
	actions bool
	hosts   []string
	live    func(context.Context, []registry.Status) []registry.Status

	mu    sync.Mutex
	state []byte // the State as JSON
	snap  *resolver.Snapshot
	subs  map[chan []byte]struct{}
	ended bool // Run returned: streams end, new ones end at once
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithRefresh sets how often node statuses and halts are read again
// (default 2s); registry changes show at once.
func WithRefresh(d time.Duration) Option { return func(s *Server) { s.refresh = d } }

// WithActions enables state-changing requests (resume a rollout group).
func WithActions(on bool) Option { return func(s *Server) { s.actions = on } }

// WithAllowedHosts adds host names (without port) that requests may
// address the console by, besides localhost and loopback addresses.
func WithAllowedHosts(hosts ...string) Option {
	return func(s *Server) { s.hosts = append(s.hosts, hosts...) }
}

// WithLiveStatuses lays fresher statuses (asked of the listeners) over
// the recorded ones on every refresh.
func WithLiveStatuses(fn func(context.Context, []registry.Status) []registry.Status) Option {
	return func(s *Server) { s.live = fn }
}

// New returns a console reading reg.
func New(reg Registry, opts ...Option) *Server {
	s := &Server{reg: reg, log: slog.Default(), refresh: 2 * time.Second, subs: map[chan []byte]struct{}{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Run keeps the state current until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	defer s.endStreams()
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before wg.Wait: deferred calls run last first
	wg.Go(func() { s.watch(ctx, "registry", s.reg.Watch, poke) })
	wg.Go(func() { s.watch(ctx, "bindings", s.reg.WatchBindings, poke) })
	tick := time.NewTicker(s.refresh)
	defer tick.Stop()
	s.rebuild(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-tick.C:
		}
		s.rebuild(ctx)
	}
}

// watch pokes on every change seen by one blocking query; on an error it
// waits a refresh interval before asking again.
func (s *Server) watch(ctx context.Context, what string, w func(context.Context, uint64) (uint64, error), poke func()) {
	var index uint64
	for ctx.Err() == nil {
		next, err := w(ctx, index)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Debug("console: watch failed; retrying", "what", what, "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(s.refresh):
			}
			continue
		}
		if next != index {
			index = next
			poke()
		}
	}
}

// rebuild reads the registry and, when the state changed, sends it to
// every page. A failed read keeps the last state, marked with the error.
func (s *Server) rebuild(ctx context.Context) {
	in, err := s.read(ctx)
	var st State
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		_ = json.Unmarshal(s.state, &st)
		s.mu.Unlock()
		st.Error = err.Error()
	} else {
		st = build(in)
	}
	st.Actions = s.actions
	s.publish(st, in.snap)
}

func (s *Server) read(ctx context.Context) (inputs, error) {
	var in inputs
	var err error
	if in.snap, err = s.reg.Snapshot(ctx); err != nil {
		return in, err
	}
	if in.stored, _, _, err = s.reg.Bindings(ctx); err != nil {
		return in, err
	}
	if in.statuses, _, err = s.reg.Statuses(ctx); err != nil {
		return in, err
	}
	if s.live != nil {
		in.statuses = s.live(ctx, in.statuses)
	}
	in.halts, err = s.reg.Halts(ctx)
	return in, err
}

// publish stores st and sends it to every subscriber when it changed; the
// time stamp alone is no change.
func (s *Server) publish(st State, snap *resolver.Snapshot) {
	data, err := json.Marshal(st)
	if err != nil {
		s.log.Error("console: encode state", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if snap != nil {
		s.snap = snap
	}
	if bytes.Equal(data, s.state) {
		return
	}
	s.state = data
	for ch := range s.subs {
		sendLatest(ch, data)
	}
}

// sendLatest replaces what a slow page has not taken yet: it only ever
// needs the newest state.
func sendLatest(ch chan []byte, data []byte) {
	select {
	case <-ch:
	default:
	}
	ch <- data
}

// subscribe returns a channel of states, closed when Run ends, and the
// function that unsubscribes.
func (s *Server) subscribe() (<-chan []byte, func()) {
	ch := make(chan []byte, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		close(ch)
		return ch, func() {}
	}
	s.subs[ch] = struct{}{}
	if s.state != nil {
		ch <- s.state
	}
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
	}
}

// endStreams ends every event stream: the state stops changing, and a
// server shutting down must not wait for pages to go away.
func (s *Server) endStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	for ch := range s.subs {
		delete(s.subs, ch)
		close(ch)
	}
}

func (s *Server) current() ([]byte, *resolver.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.snap
}
