// Package console is patchbay's web console: one page, served from the
// binary, that shows the cluster live — the dependency graph of every
// federation, each service's instances and bindings with the reasons
// behind them, every node's last run and the halted rollout groups.
//
// The server keeps one State, rebuilt whenever the registry's inputs, the
// bindings, the nodes' recorded statuses or the rollout groups change (a
// blocking query each) and, with live listeners to ask and someone
// watching, every refresh interval, and pushes it to pages over
// server-sent events.
// It is read-only unless WithActions: then a page may resume a halted
// rollout group, and only from the console's own origin.
package console

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/registry"
)

// ErrForbidden: a request came through another host name (DNS
// rebinding) or from another origin (a cross-site request).
var ErrForbidden = errkind.New(errkind.Input, "console: forbidden")

// Registry is what the console reads; *registry.Client is one.
type Registry interface {
	Snapshot(ctx context.Context) (*binding.Snapshot, error)
	Watch(ctx context.Context, index uint64) (uint64, error)
	Bindings(ctx context.Context) ([]registry.StoredBinding, []binding.SkippedKey, uint64, error)
	WatchBindings(ctx context.Context, index uint64) (uint64, error)
	Statuses(ctx context.Context) ([]registry.Status, []binding.SkippedKey, error)
	WatchStatuses(ctx context.Context, index uint64) (uint64, error)
	Halts(ctx context.Context) (map[string]registry.Halt, error)
	WatchRollouts(ctx context.Context, index uint64) (uint64, error)
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
	changes func(context.Context) map[string]events.NodeChanges

	mu    sync.Mutex
	state []byte // the State as JSON
	snap  *binding.Snapshot
	subs  map[chan []byte]struct{}
	ended bool // Run returned: streams end, new ones end at once
	// liveShown says the state carries the listeners' answers (or the
	// registry's error); liveNext is closed, and replaced, whenever such a
	// state is published.
	liveShown bool
	liveNext  chan struct{}

	wake        chan struct{}    // capacity 1: Run has something to do
	polledUntil atomic.Int64     // unix nanoseconds: /api/state was asked lately
	ticks       <-chan time.Time // when set (tests), replaces the refresh ticker
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithRefresh sets how often the live listeners are asked for their
// state (WithLiveStatuses) while someone watches, and how soon a failed
// read is tried again (default 2s). What Consul records shows at once.
func WithRefresh(d time.Duration) Option { return func(s *Server) { s.refresh = d } }

// WithActions enables state-changing requests (resume a rollout group).
func WithActions(on bool) Option { return func(s *Server) { s.actions = on } }

// WithAllowedHosts adds host names (without port) that requests may
// address the console by, besides localhost and loopback addresses.
func WithAllowedHosts(hosts ...string) Option {
	return func(s *Server) { s.hosts = append(s.hosts, hosts...) }
}

// WithLiveStatuses lays fresher statuses (asked of the listeners) over
// the recorded ones on every refresh while someone watches (see Run).
func WithLiveStatuses(fn func(context.Context, []registry.Status) []registry.Status) Option {
	return func(s *Server) { s.live = fn }
}

// New returns a console reading reg.
func New(reg Registry, opts ...Option) *Server {
	s := &Server{reg: reg, log: slog.Default(), refresh: 2 * time.Second, subs: map[chan []byte]struct{}{}, wake: make(chan struct{}, 1), liveNext: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	return s
}

// part is a part of the console's inputs, read again when a watch sees
// it change.
type part uint32

const (
	partRegistry part = 1 << iota // the snapshot and the stored bindings
	partStatuses
	partHalts
	allParts = partRegistry | partStatuses | partHalts
)

// Run keeps the state current until ctx ends: one blocking query per part
// says when to read it again, so an idle cluster costs no reads. While
// someone watches (a page's event stream, or /api/state asked within the
// last few refreshes) every refresh asks the live listeners again; nobody
// watching, no listener is woken and the state shows what Consul records.
func (s *Server) Run(ctx context.Context) error {
	defer s.endStreams()
	var dirty atomic.Uint32
	changed := func(p part) func() {
		return func() {
			dirty.Or(uint32(p))
			s.poke()
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before wg.Wait: deferred calls run last first
	wg.Go(func() { s.watch(ctx, "registry", s.reg.Watch, changed(partRegistry)) })
	wg.Go(func() { s.watch(ctx, "bindings", s.reg.WatchBindings, changed(partRegistry)) })
	wg.Go(func() { s.watch(ctx, "statuses", s.reg.WatchStatuses, changed(partStatuses)) })
	wg.Go(func() { s.watch(ctx, "rollouts", s.reg.WatchRollouts, changed(partHalts)) })
	tick := s.ticks
	if tick == nil && s.live != nil {
		t := time.NewTicker(s.refresh)
		defer t.Stop()
		tick = t.C
	}
	var in inputs
	shownLive := false // the state shown carries the listeners' answers
	for parts := allParts; ; parts = part(dirty.Swap(0)) {
		var retry <-chan time.Time
		ask := s.live != nil && s.watched()
		if parts != 0 || ask || shownLive {
			if failed := s.rebuild(ctx, &in, parts, ask); failed != 0 {
				dirty.Or(uint32(failed))
				retry = time.After(s.refresh)
			} else {
				shownLive = ask
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-tick:
		case <-retry:
		}
	}
}

// poke wakes Run, which then reads what changed and, if someone watches,
// asks the live listeners.
func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// watched reports whether a page streams the state or /api/state was
// asked lately: only then are the live listeners worth waking.
func (s *Server) watched() bool {
	s.mu.Lock()
	streams := len(s.subs)
	s.mu.Unlock()
	return streams > 0 || time.Now().UnixNano() < s.polledUntil.Load()
}

// polled notes a request for /api/state: the next few refreshes ask the
// live listeners, at once if none was asking, so that a script polling
// the state sees them.
func (s *Server) polled() {
	was := s.watched()
	s.polledUntil.Store(time.Now().Add(pollWatches * s.refresh).UnixNano())
	if !was {
		s.poke()
	}
}

// pollWatches is how many refreshes a request for /api/state keeps the
// live listeners asked.
const pollWatches = 3

// watch calls changed on every change seen by one blocking query; on an
// error it waits a refresh interval before asking again.
func (s *Server) watch(ctx context.Context, what string, w func(context.Context, uint64) (uint64, error), changed func()) {
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
			changed()
		}
	}
}

// rebuild reads the parts of in that changed and, when the state changed,
// sends it to every page. A failed read keeps the last state, marked with
// the error, and returns the parts to read again.
func (s *Server) rebuild(ctx context.Context, in *inputs, parts part, ask bool) (failed part) {
	next := *in
	err := s.read(ctx, &next, parts)
	var st State
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		s.mu.Lock()
		_ = json.Unmarshal(s.state, &st)
		s.mu.Unlock()
		st.Error = err.Error()
		failed = parts
	} else {
		*in = next
		shown := next
		if ask {
			shown.statuses = s.live(ctx, next.statuses)
		}
		st = build(shown)
		if ask && s.changes != nil {
			st.Changes = recentChanges(s.changes(ctx), next.stored, next.statuses, next.halts)
		}
	}
	st.Actions = s.actions
	// A failed read is as fresh as it gets until the next retry: waiters
	// see the error rather than wait for listeners.
	s.publish(st, in.snap, ask || err != nil)
	return failed
}

// read reads parts into in.
func (s *Server) read(ctx context.Context, in *inputs, parts part) error {
	var err error
	if parts&partRegistry != 0 {
		if in.snap, err = s.reg.Snapshot(ctx); err != nil {
			return err
		}
		if in.stored, _, _, err = s.reg.Bindings(ctx); err != nil {
			return err
		}
	}
	if parts&partStatuses != 0 {
		if in.statuses, _, err = s.reg.Statuses(ctx); err != nil {
			return err
		}
	}
	if parts&partHalts != 0 {
		in.halts, err = s.reg.Halts(ctx)
	}
	return err
}

// publish stores st and sends it to every subscriber when it changed; the
// time stamp alone is no change. settled says no fresher state is to be
// had by waiting: the listeners were asked, or the registry failed.
func (s *Server) publish(st State, snap *binding.Snapshot, settled bool) {
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
	s.liveShown = settled
	if settled {
		close(s.liveNext)
		s.liveNext = make(chan struct{})
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
	if s.state != nil && s.fresh() {
		ch <- s.state
	}
	if len(s.subs) == 1 {
		s.poke() // the first page: ask the live listeners now, not at the next refresh
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

// fresh reports whether the state is worth showing as it is: it carries
// the listeners' answers, or there are no listeners to ask. s.mu is held.
func (s *Server) fresh() bool { return s.live == nil || s.liveShown || s.ended }

// firstLiveWait bounds how long a first answer waits for the listeners:
// past it, the page or script gets the recorded state, which says how old
// each node's run is.
const firstLiveWait = 3 * time.Second

// awaitLive returns once the state carries the listeners' answers (Run
// was poked by the caller's subscribe or polled), after firstLiveWait, or
// when ctx ends. A fresh state returns at once.
func (s *Server) awaitLive(ctx context.Context) {
	s.mu.Lock()
	fresh, next := s.fresh(), s.liveNext
	s.mu.Unlock()
	if fresh {
		return
	}
	t := time.NewTimer(firstLiveWait)
	defer t.Stop()
	select {
	case <-next:
	case <-t.C:
	case <-ctx.Done():
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

func (s *Server) current() ([]byte, *binding.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.snap
}
