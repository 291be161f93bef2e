package resolver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/registry"
)

// Registry is what the loop needs of Consul.
type Registry interface {
	AcquireLeadership(ctx context.Context, name, holder string) (*registry.Leadership, error)
	Snapshot(ctx context.Context) (*registry.Snapshot, error)
	Watch(ctx context.Context, index uint64) (uint64, error)
	Bindings(ctx context.Context) ([]registry.StoredBinding, []registry.SkippedKey, error)
	PutBinding(ctx context.Context, b registry.StoredBinding) (uint64, error)
	DeleteBinding(ctx context.Context, b registry.StoredBinding) error
}

var _ Registry = (*registry.Client)(nil)

// Publisher announces events; *nats.Conn is one.
type Publisher interface {
	Publish(subject string, data []byte) error
}

// Loop is the resolver daemon. Several may run: one leads, through a
// Consul lock, and the others stand by. The leader holds one blocking query
// on the registry's inputs, waits for a quiet moment, resolves, writes the
// bindings that changed (check-and-set, revision + 1) and announces each on
// NATS.
type Loop struct {
	reg    Registry
	pub    Publisher
	holder string
	quiet  time.Duration
	max    time.Duration
	log    *slog.Logger
	// onApplied, when set, hears of every pass (tests, metrics).
	onApplied func(Pass)
}

// Pass describes one resolve-and-write pass.
type Pass struct {
	Index             uint64 // Consul index of the snapshot
	Bindings, Written int
	Deleted           int
	Duration          time.Duration
}

// LoopOption configures a Loop.
type LoopOption func(*Loop)

// WithDebounce sets the quiet window (resolve once the registry has been
// unchanged this long) and the most a burst of changes can defer a resolve.
// Defaults: 500ms and 5s.
func WithDebounce(quiet, maxWait time.Duration) LoopOption {
	return func(l *Loop) { l.quiet, l.max = quiet, maxWait }
}

// WithHolder names this process in the leader lock (default "resolver").
func WithHolder(name string) LoopOption { return func(l *Loop) { l.holder = name } }

// WithLogger sets the logger.
func WithLogger(log *slog.Logger) LoopOption { return func(l *Loop) { l.log = log } }

// WithPassHook calls fn after every pass.
func WithPassHook(fn func(Pass)) LoopOption { return func(l *Loop) { l.onApplied = fn } }

// NewLoop returns a resolver loop.
func NewLoop(reg Registry, pub Publisher, opts ...LoopOption) *Loop {
	l := &Loop{reg: reg, pub: pub, holder: "resolver", quiet: 500 * time.Millisecond, max: 5 * time.Second, log: slog.Default()}
	for _, opt := range opts {
		opt(l)
	}
	return l
}

// Run resolves while it leads and stands by otherwise, until ctx ends.
// Failures (Consul or NATS down, leadership lost) are retried with backoff.
func (l *Loop) Run(ctx context.Context) error {
	b := backoff.NewExponentialBackOff()
	b.MaxInterval, b.MaxElapsedTime = 10*time.Second, 0
	for ctx.Err() == nil {
		err := l.leadOnce(ctx, b.Reset)
		if ctx.Err() != nil {
			return nil
		}
		wait := b.NextBackOff()
		l.log.Warn("resolver not leading; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	return nil
}

// leadOnce waits for leadership and resolves until it is lost or fails.
func (l *Loop) leadOnce(ctx context.Context, leading func()) error {
	l.log.Info("resolver standing by for leadership", "holder", l.holder)
	lead, err := l.reg.AcquireLeadership(ctx, "resolver", l.holder)
	if err != nil {
		return err
	}
	defer func() { _ = lead.Release() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // ends with ctx, which this function cancels on return
		select {
		case <-lead.Lost:
			l.log.Warn("resolver leadership lost")
			cancel()
		case <-ctx.Done():
		}
	}()
	l.log.Info("resolver leading", "holder", l.holder)
	leading()
	return l.lead(ctx)
}

// lead is the leader's work: resolve, write, wait for a change, repeat.
func (l *Loop) lead(ctx context.Context) error {
	stored, err := l.loadStored(ctx)
	if err != nil {
		return err
	}
	for {
		snap, err := l.reg.Snapshot(ctx)
		if err != nil {
			return err // never resolve from a failed read
		}
		if err := l.pass(ctx, snap, stored); err != nil {
			return err
		}
		if err := l.waitForChange(ctx, snap.Index); err != nil {
			return err
		}
	}
}

// waitForChange blocks until the registry changes after index, then until
// it has been quiet for the quiet window or the maximum wait has passed.
// The blocking query itself measures the quiet: no timers to own.
func (l *Loop) waitForChange(ctx context.Context, index uint64) error {
	for {
		next, err := l.reg.Watch(ctx, index)
		if err != nil {
			return err
		}
		if next != index {
			index = next
			break
		}
	}
	deadline := time.Now().Add(l.max)
	for l.quiet > 0 && time.Now().Before(deadline) {
		qctx, cancel := context.WithTimeout(ctx, min(l.quiet, time.Until(deadline)))
		next, err := l.reg.Watch(qctx, index)
		quiet := qctx.Err() != nil
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case quiet:
			return nil
		case err != nil:
			return err
		}
		index = next
	}
	return nil
}

// storedBinding is what the leader knows of a stored binding.
type storedBinding struct {
	revision    uint64
	modifyIndex uint64
	content     []byte // canonical JSON with revision 0, to compare
}

type bindingKey struct{ fed, service, region string }

// loadStored reads the bindings already in Consul, so that a new leader
// continues their revisions and rewrites nothing that has not changed.
func (l *Loop) loadStored(ctx context.Context) (map[bindingKey]storedBinding, error) {
	list, skipped, err := l.reg.Bindings(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range skipped {
		l.log.Warn("skipping unreadable binding key", "key", s.Key, "reason", s.Reason)
	}
	stored := map[bindingKey]storedBinding{}
	for _, sb := range list {
		var b Binding
		if err := json.Unmarshal(sb.Value, &b); err != nil {
			l.log.Warn("stored binding is malformed; it will be rewritten", "federation", sb.Federation, "service", sb.Service, "region", sb.Region, "err", err)
		}
		stored[bindingKey{sb.Federation, sb.Service, sb.Region}] = storedBinding{revision: b.Revision, modifyIndex: sb.ModifyIndex, content: canonical(b)}
	}
	return stored, nil
}

func canonical(b Binding) []byte {
	b.Revision = 0
	data, _ := json.Marshal(b) // Binding holds only strings, numbers, maps and slices
	return data
}

// pass resolves snap and writes what changed. On a conflict (someone else
// wrote a binding) it returns the error, and the leader starts over from
// what is stored.
func (l *Loop) pass(ctx context.Context, snap *registry.Snapshot, stored map[bindingKey]storedBinding) error {
	start := time.Now()
	result := Resolve(snap)
	p := Pass{Index: snap.Index, Bindings: len(result.Bindings)}
	seen := map[bindingKey]bool{}
	for _, b := range result.Bindings {
		k := bindingKey{b.Federation, b.Service, b.Region}
		seen[k] = true
		written, err := l.write(ctx, k, b, stored)
		if err != nil {
			return err
		}
		if written {
			p.Written++
		}
	}
	for k, sb := range stored {
		if seen[k] {
			continue
		}
		if err := l.remove(ctx, k, sb, stored); err != nil {
			return err
		}
		p.Deleted++
	}
	p.Duration = time.Since(start)
	if p.Written+p.Deleted > 0 {
		l.log.Info("bindings updated", "index", p.Index, "bindings", p.Bindings, "written", p.Written, "deleted", p.Deleted, "took", p.Duration)
	}
	if l.onApplied != nil {
		l.onApplied(p)
	}
	return nil
}

// write stores b if it differs from what is stored, then announces it.
func (l *Loop) write(ctx context.Context, k bindingKey, b Binding, stored map[bindingKey]storedBinding) (bool, error) {
	prev := stored[k]
	content := canonical(b)
	if prev.modifyIndex != 0 && bytes.Equal(prev.content, content) {
		return false, nil
	}
	b.Revision = prev.revision + 1
	data, err := json.Marshal(b)
	if err != nil {
		return false, fmt.Errorf("resolver: encode binding %s/%s/%s: %w", k.fed, k.service, k.region, err)
	}
	idx, err := l.reg.PutBinding(ctx, registry.StoredBinding{Federation: k.fed, Service: k.service, Region: k.region, Value: data, ModifyIndex: prev.modifyIndex})
	if err != nil {
		if errors.Is(err, registry.ErrConflict) {
			delete(stored, k) // re-read on the next lead
		}
		return false, err
	}
	stored[k] = storedBinding{revision: b.Revision, modifyIndex: idx, content: content}
	l.announce(events.BindingsChanged{Federation: k.fed, Service: k.service, Region: k.region, Revision: b.Revision})
	return true, nil
}

// remove deletes the binding of a service that is gone, then announces it
// with revision 0.
func (l *Loop) remove(ctx context.Context, k bindingKey, sb storedBinding, stored map[bindingKey]storedBinding) error {
	err := l.reg.DeleteBinding(ctx, registry.StoredBinding{Federation: k.fed, Service: k.service, Region: k.region, ModifyIndex: sb.modifyIndex})
	if err != nil {
		return err
	}
	delete(stored, k)
	l.announce(events.BindingsChanged{Federation: k.fed, Service: k.service, Region: k.region})
	return nil
}

// announce publishes an event. A failure is only logged: the binding is in
// Consul already, and listeners' anti-entropy finds it without the event.
func (l *Loop) announce(e events.BindingsChanged) {
	if err := l.pub.Publish(events.BindingsSubject(e.Federation, e.Service), e.Encode()); err != nil {
		l.log.Warn("bindings event not published; listeners will catch up by anti-entropy", "subject", events.BindingsSubject(e.Federation, e.Service), "err", err)
	}
}
