package listener

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/listener/command"
	"github.com/patchbay/patchbay/registry"
)

// supervisor is the state of supervise's goroutine: the node's
// registrations and subscriptions, kept in step with the config.
type supervisor struct {
	cfg    *Config
	owners map[string]*registrar // by service
	subs   map[string]*nats.Subscription
	groups []string
}

// registrar keeps one instance registered; it retries while the service is
// not published yet.
type registrar struct {
	spec   registry.InstanceSpec
	cancel context.CancelFunc
	done   chan struct{}
}

// supervise keeps registrations and subscriptions, which the caller set up
// with configure, in step with the config and the manifests, until ctx is
// done. Registrars run under regCtx, which the caller cancels only once the
// running provision is over: instances stay registered while it finishes
// (a rollout's health wait needs them).
func (l *Listener) supervise(ctx, regCtx context.Context, s *supervisor, wg *sync.WaitGroup) {
	for {
		select {
		case <-ctx.Done():
			return
		case cfg := <-l.reloads:
			l.reconfigure(regCtx, s, cfg, wg)
		case groups := <-l.groups:
			s.groups = groups
			l.subscribe(s)
		case <-l.probes.C():
		}
	}
}

// teardown ends the subscriptions and waits for the registrars, whose
// context the caller has cancelled, to deregister their instances.
func (l *Listener) teardown(s *supervisor, wg *sync.WaitGroup) {
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	wg.Wait()
}

func (l *Listener) reconfigure(ctx context.Context, s *supervisor, cfg *Config, wg *sync.WaitGroup) {
	old := s.cfg
	if cfg.Node != old.Node || cfg.StateDir != old.StateDir || cfg.Control != old.Control || cfg.Queue != old.Queue {
		l.log.Warn("listener.yaml reloaded: node, state_dir, control and queue changes take effect at the next restart")
		cfg.Node, cfg.StateDir, cfg.Control, cfg.Queue = old.Node, old.StateDir, old.Control, old.Queue
	}
	l.cfg.Store(cfg)
	command.WarnShellGlobs(l.log, cfg.File, cfg.Allow.Commands)
	l.configure(ctx, s, cfg, wg)
	l.log.Info("listener.yaml reloaded", "services", cfg.serviceNames())
	l.queue.Trigger("listener.yaml reloaded")
}

// configure starts and stops registrars and subscriptions to match cfg.
func (l *Listener) configure(ctx context.Context, s *supervisor, cfg *Config, wg *sync.WaitGroup) {
	s.cfg = cfg
	want := map[string]registry.InstanceSpec{}
	for _, sc := range cfg.Services {
		if sc.Port > 0 {
			want[sc.Service] = registry.InstanceSpec{Federation: l.fed, Service: sc.Service, Node: cfg.Node, Address: cfg.addrOf(sc), Port: sc.Port, Region: cfg.Region}
		}
	}
	for name, r := range s.owners {
		if spec, ok := want[name]; !ok || spec != r.spec {
			l.stopRegistrar(r)
			delete(s.owners, name)
		}
	}
	for name, spec := range want {
		if _, ok := s.owners[name]; !ok {
			s.owners[name] = l.startRegistrar(ctx, spec, wg)
		}
	}
	l.subscribe(s)
}

// startRegistrar registers spec and keeps it registered (registry.Owner
// re-registers after Consul comes back); it retries Register itself while
// the service is not published or Consul is down, and an owner that Consul
// refused a permission, loudly, until the policy is fixed.
func (l *Listener) startRegistrar(ctx context.Context, spec registry.InstanceSpec, wg *sync.WaitGroup) *registrar {
	ctx, cancel := context.WithCancel(ctx)
	r := &registrar{spec: spec, cancel: cancel, done: make(chan struct{})}
	wg.Go(func() {
		defer close(r.done)
		b, restart := registrarBackoff(), registrarBackoff()
		for ctx.Err() == nil {
			owner := l.register(ctx, spec, b)
			if owner == nil {
				return // ctx done
			}
			l.setOwner(spec.Service, owner)
			select {
			case <-ctx.Done():
			case <-owner.Done():
			}
			l.setOwner(spec.Service, nil)
			l.closeOwner(ctx, owner)
			if ctx.Err() == nil {
				wait := restart.NextBackOff()
				l.log.Error("instance owner stopped; registering again", "service", spec.Service, "err", owner.Err(), "retry_in", wait)
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
		}
	})
	return r
}

func registrarBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 500*time.Millisecond, 30*time.Second, 0
	b.Reset()
	return b
}

// register calls Register until it succeeds (nil once ctx is done).
func (l *Listener) register(ctx context.Context, spec registry.InstanceSpec, b backoff.BackOff) *registry.Owner {
	var owner *registry.Owner
	op := func() error {
		var err error
		owner, err = l.reg.Register(ctx, spec, l.ownerOpts...)
		return err
	}
	notify := func(err error, wait time.Duration) {
		level := slog.LevelWarn
		if errors.Is(err, registry.ErrPermissionDenied) {
			level = slog.LevelError
		}
		l.log.Log(ctx, level, "cannot register instance yet; retrying", "service", spec.Service, "err", err, "retry_in", wait)
	}
	if err := backoff.RetryNotify(op, backoff.WithContext(b, ctx), notify); err != nil {
		return nil
	}
	return owner
}

// closeOwner deregisters the instance, even once ctx is done.
func (l *Listener) closeOwner(ctx context.Context, owner *registry.Owner) {
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := owner.Close(closeCtx); err != nil {
		l.log.Warn("deregistering the instance failed; it vanishes when its owner check lapses", "instance", owner.ID(), "err", err)
		return
	}
	l.log.Info("instance deregistered", "instance", owner.ID())
}

func newSupervisor() *supervisor {
	return &supervisor{owners: map[string]*registrar{}, subs: map[string]*nats.Subscription{}}
}

func (l *Listener) stopRegistrar(r *registrar) {
	r.cancel()
	<-r.done
}

// setOwner publishes the owners for status; only registrars write, one
// service each, so a copy-on-write map under a lock is enough.
func (l *Listener) setOwner(service string, o *registry.Owner) {
	l.ownersMu.Lock()
	defer l.ownersMu.Unlock()
	next := maps.Clone(*l.owners.Load())
	if o == nil {
		delete(next, service)
	} else {
		next[service] = o
	}
	l.owners.Store(&next)
}

// subscribe keeps one subscription per subject the node needs: the
// bindings of its services and the rollout groups they belong to. nats.go
// re-subscribes after a reconnect by itself.
func (l *Listener) subscribe(s *supervisor) {
	if l.bus == nil {
		return
	}
	want := map[string]nats.MsgHandler{}
	for _, name := range s.cfg.serviceNames() {
		want[events.BindingsSubject(l.fed, name)] = l.onBindings
	}
	for name := range s.owners {
		want[events.InstancesSubject(l.fed, name)] = l.onInstancesGone
	}
	want[events.StatusSubject] = l.onStatusRequest
	want[events.ChangesSubject] = l.onChangesRequest
	for _, g := range s.groups {
		want[events.RolloutSubject(l.fed, g)] = func(*nats.Msg) { l.queue.Trigger("rollout group " + g + " resumed") }
	}
	for subj, sub := range s.subs {
		if _, ok := want[subj]; !ok {
			_ = sub.Unsubscribe()
			delete(s.subs, subj)
		}
	}
	for _, subj := range slices.Sorted(maps.Keys(want)) {
		if _, ok := s.subs[subj]; ok {
			continue
		}
		sub, err := l.bus.Subscribe(subj, want[subj])
		if err != nil {
			l.log.Warn("cannot subscribe; anti-entropy will catch changes", "subject", subj, "err", err)
			continue
		}
		s.subs[subj] = sub
	}
}

// onBindings runs on nats.go's goroutines: it only records and triggers.
func (l *Listener) onBindings(m *nats.Msg) {
	if !l.trusted(m) {
		return
	}
	e, err := events.DecodeBindingsChanged(m.Subject, m.Data)
	if err != nil {
		l.metrics.Malformed()
		l.malformedLog.Do(func() {
			l.log.Warn("ignoring malformed events (logged at most every 10s; see patchbay_listener_events_malformed_total)", "subject", m.Subject, "err", err)
		})
		return
	}
	if e.Federation != l.fed {
		l.eventIgnored(e, ignoredOtherFederation)
		return
	}
	l.changes.received(e, l.cfg.Load().Region, time.Now())
	if run, ignored := l.inputs.event(e, l.cfg.Load().Region); run {
		l.queue.Trigger("binding of " + e.Service + " changed")
	} else {
		l.eventIgnored(e, ignored)
	}
}

// onInstancesGone has the owner of an instance the resolver saw leave the
// registry read its key now (registry.Owner.Recheck), so that an instance
// a server removed behind its owner's back comes back within a second
// rather than at the owner's next hold check. A forged or stale event
// costs at most one Consul read a second per instance.
func (l *Listener) onInstancesGone(m *nats.Msg) {
	if !l.trusted(m) {
		return
	}
	e, err := events.DecodeInstancesGone(m.Subject, m.Data)
	if err != nil || e.Federation != l.fed {
		l.metrics.Malformed()
		return
	}
	o := (*l.owners.Load())[e.Service]
	if o != nil && slices.Contains(e.Instances, o.ID()) {
		l.log.Info("the resolver saw this node's instance leave the registry; its owner reads its key now", "service", e.Service, "instance", o.ID())
		o.Recheck()
	}
}

// trusted reports whether a bindings event may be applied: always when
// listener.yaml names no key, else only when a key it names signed it. It
// runs before the body is parsed. A genuine event dropped (its resolver's
// key not listed yet) only delays the change until anti-entropy reads
// Consul.
func (l *Listener) trusted(m *nats.Msg) bool {
	v := l.cfg.Load().Events.verifier
	if v == nil {
		return true
	}
	err := v.Verify(m)
	if err == nil {
		return true
	}
	reason := rejectedBadSignature
	switch {
	case errors.Is(err, events.ErrUnsigned):
		reason = rejectedUnsigned
	case errors.Is(err, events.ErrUnknownKey):
		reason = rejectedUnknownKey
	}
	l.metrics.Rejected(reason)
	l.rejectedLog.Do(func() {
		l.log.Warn("ignoring bindings events not signed by a key of listener.yaml's events.public_keys (logged at most every 10s; see patchbay_listener_events_rejected_total)", "subject", m.Subject, "reason", reason, "err", err)
	})
	return false
}

// onStatusRequest answers `patchbay status` with the last run, once there
// is one.
func (l *Listener) onStatusRequest(m *nats.Msg) {
	run := l.lastRun.Load()
	if run == nil {
		return
	}
	status := statusOf(l.cfg.Load().Node, l.fed, run)
	status.Live = true
	if q := l.queueState.Load(); q != nil {
		status.Queue = &registry.QueueState{Pending: q.Pending, Running: q.Running, Paused: q.Paused, RetryAt: q.RetryAt}
	}
	if err := events.RespondStatus(m, status); err != nil {
		l.log.Debug("cannot answer a status request", "err", err)
	}
}

// announceGroups hands the rollout groups of the hosted services to the
// supervisor, replacing an older list it has not taken yet.
func (l *Listener) announceGroups(groups []string) {
	select {
	case <-l.groups:
	default:
	}
	l.groups <- groups
}
