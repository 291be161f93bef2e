package resolverd

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/debounce"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolver"
)

// leader is one term of leadership. lead's goroutine owns it; the two
// watchers only send to it.
type leader struct {
	*Loop
	stored     map[bindingKey]storedBinding
	reload     bool   // stored must be read again (a conflicting write)
	snapIndex  uint64 // Consul index of the inputs last resolved
	readIndex  uint64 // Consul index of the last read of the bindings
	writeIndex uint64 // Consul index of the last bindings write
	lastPass   time.Time
	changeSeen time.Time            // first registry change not yet resolved (Pass.Since)
	live       map[instanceRef]bool // instances the last pass bound (gone.go)
}

// storedBinding is what the leader knows of a stored binding.
type storedBinding struct {
	revision    uint64
	modifyIndex uint64 // 0: not stored (deleted by hand): written anew, revision kept
	content     []byte // canonical JSON with revision 0, to compare
}

type bindingKey struct{ fed, service, region string }

// bindingsRead is a read of every stored binding.
type bindingsRead struct {
	list  []registry.StoredBinding
	index uint64
}

// bindingsWake is one answer of the bindings watcher: the bindings' Consul
// index, and whether it moved (else Consul's wait time passed).
type bindingsWake struct {
	index   uint64
	changed bool
}

// lead is the leader's work: resolve, write, wait for a change, repeat.
// Consul failures are retried while leadership lasts; only a refused
// permission or the end of ctx (leadership lost, stopping) ends it.
func (l *Loop) lead(ctx context.Context) error {
	ld := &leader{Loop: l, reload: true}
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel below: deferred calls run last first
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	inputs, bindings := make(chan uint64, 1), make(chan bindingsWake, 1)
	for started := false; ; started = true {
		if err := l.retry(ctx, "resolve", func() error { return ld.resolve(ctx) }); err != nil || ctx.Err() != nil {
			return err
		}
		if !started {
			from, fromBindings := ld.snapIndex, ld.readIndex
			wg.Go(func() { l.watchInputs(ctx, from, inputs) })
			wg.Go(func() { l.watchBindings(ctx, fromBindings, bindings) })
		}
		if err := ld.waitForChange(ctx, inputs, bindings); err != nil {
			return nil // ctx ended
		}
	}
}

// resolve reads the inputs, resolves them and writes what changed.
func (ld *leader) resolve(ctx context.Context) error {
	if ld.reload {
		list, skipped, index, err := ld.reg.Bindings(ctx)
		if err != nil {
			return err
		}
		for _, s := range skipped {
			ld.log.Warn("skipping unreadable binding key", "key", s.Key, "reason", s.Reason)
		}
		ld.adopt(list, index)
	}
	snap, err := ld.reg.Snapshot(ctx)
	if err != nil {
		return err // never resolve from a failed read
	}
	if err := ld.pass(ctx, snap); err != nil {
		return err
	}
	ld.announceGone(snap)
	ld.snapIndex, ld.lastPass, ld.changeSeen = snap.Index, time.Now(), time.Time{}
	return nil
}

// adopt makes the stored bindings in list what the leader knows, keeping
// revisions monotonic: a binding written by hand (garbage, an older copy)
// or deleted continues above every revision the leader knew, and one
// DecodeBinding refuses (malformed, or a revision past MaxRevision that
// would wrap to 0, "deleted") or at MaxRevision continues above its own
// modify index, which no earlier revision of
// that key exceeds (each revision was written at a Consul index of its
// own, and Consul's indexes only grow).
func (ld *leader) adopt(list []registry.StoredBinding, index uint64) {
	next := make(map[bindingKey]storedBinding, len(list))
	for k, sb := range ld.stored { // deleted by hand unless listed below
		next[k] = storedBinding{revision: sb.revision}
	}
	for _, sb := range list {
		k := bindingKey{sb.Federation, sb.Service, sb.Region}
		rev := next[k].revision
		b, err := binding.DecodeBinding(sb.Key, sb.Value)
		if err == nil && b.Revision == binding.MaxRevision {
			err = fmt.Errorf("%s: revision %d is the largest; no revision can follow it", sb.Key, b.Revision)
		}
		if err != nil {
			// Its revision is not one to continue from: one past
			// MaxRevision would wrap to 0, which reads as deleted.
			ld.log.Warn("stored binding refused; it is rewritten", "key", sb.Key, "err", err)
			b, rev = &binding.Binding{}, max(rev, min(sb.ModifyIndex, binding.MaxRevision-1))
		}
		next[k] = storedBinding{revision: max(rev, b.Revision), modifyIndex: sb.ModifyIndex, content: canonical(*b)}
	}
	ld.stored, ld.reload, ld.readIndex = next, false, index
}

func canonical(b binding.Binding) []byte {
	b.Revision = 0
	data, _ := json.Marshal(b) // Binding holds only strings, numbers, maps and slices
	return data
}

// bindingsChanged reports whether the bindings were written by someone
// else. A change to the index of the leader's own last write is its own:
// the bindings are read only for another change, and every time Consul's
// wait time passes, which bounds how long a foreign write that happened
// just before one of the leader's can go unseen.
func (ld *leader) bindingsChanged(ctx context.Context, wake bindingsWake) bool {
	if wake.changed && wake.index == ld.writeIndex {
		return false
	}
	list, _, index, err := ld.reg.Bindings(ctx)
	if err != nil {
		ld.log.Debug("cannot read the bindings to compare; the next change will", "err", err)
		return false
	}
	return ld.foreign(bindingsRead{list: list, index: index})
}

// foreign reports whether a read of the bindings shows a write the leader
// did not make. A read older than the leader's last write is ignored.
func (ld *leader) foreign(read bindingsRead) bool {
	if read.index < ld.writeIndex || read.index < ld.readIndex {
		return false
	}
	listed := map[bindingKey]uint64{}
	for _, sb := range read.list {
		listed[bindingKey{sb.Federation, sb.Service, sb.Region}] = sb.ModifyIndex
	}
	changed := len(listed) != len(ld.stored)
	for k, sb := range ld.stored {
		changed = changed || listed[k] != sb.modifyIndex
	}
	if changed {
		ld.log.Warn("a binding was written or deleted outside the resolver; rewriting it")
		ld.adopt(read.list, read.index)
	}
	return changed
}

// waitForChange returns when the leader should resolve again: at once for
// an isolated change or a binding written by someone else; for a change
// within the quiet window of the last pass, once the registry has been
// quiet that long or the maximum wait has passed.
func (ld *leader) waitForChange(ctx context.Context, inputs <-chan uint64, bindings <-chan bindingsWake) error {
	var first, last time.Time
	var wake <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ld.probes.C():
			continue
		case <-wake:
			return nil
		case wake := <-bindings:
			if ld.bindingsChanged(ctx, wake) {
				return nil
			}
			continue
		case index := <-inputs:
			if index == ld.snapIndex {
				continue // resolved already
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			if ld.changeSeen.IsZero() {
				ld.changeSeen = now
			}
			last = now
		}
		due := ld.due(first, last)
		if !time.Now().Before(due) {
			return nil
		}
		wake = time.After(time.Until(due))
	}
}

// due is when changes first seen at first and last seen at last are
// resolved.
func (ld *leader) due(first, last time.Time) time.Time {
	w := debounce.Window{Quiet: ld.quiet, Max: ld.max}
	if w.Idle(ld.lastPass, first) {
		return first // leading edge: nothing resolved recently
	}
	return w.Due(first, last)
}

// pass resolves snap and writes every binding that changed in one
// transaction (more when Consul's limits require). On a conflict (someone
// else wrote a binding) it returns the error, and the next attempt starts
// over from what is stored.
func (ld *leader) pass(ctx context.Context, snap *binding.Snapshot) error {
	start := time.Now()
	result := resolver.Resolve(snap)
	changes := ld.changes(result)
	indexes, err := ld.reg.WriteBindings(ctx, changes.writes)
	for i, idx := range indexes { // those applied, even if a later batch failed
		ld.applied(changes.writes[i], changes.next[i], idx)
	}
	if err != nil {
		if errors.Is(err, registry.ErrConflict) {
			ld.reload = true
		}
		return err
	}
	p := Pass{Index: snap.Index, Bindings: len(result.Bindings), Written: changes.written, Deleted: len(changes.writes) - changes.written, Duration: time.Since(start), Since: ld.changeSeen}
	if len(changes.writes) > 0 {
		ld.log.Info("bindings updated", "index", p.Index, "bindings", p.Bindings, "written", p.Written, "deleted", p.Deleted, "took", p.Duration)
	}
	if ld.onApplied != nil {
		ld.onApplied(p)
	}
	return nil
}

// passChanges is what a pass writes: writes[i] becomes next[i] once stored.
type passChanges struct {
	writes  []registry.BindingWrite
	next    []storedBinding
	written int // writes that are not deletes
}

func (ld *leader) changes(result *resolver.Result) passChanges {
	var c passChanges
	seen := map[bindingKey]bool{}
	for _, b := range result.Bindings {
		k := bindingKey{b.Federation, b.Service, b.Region}
		seen[k] = true
		prev, content := ld.stored[k], canonical(b)
		if prev.modifyIndex != 0 && bytes.Equal(prev.content, content) {
			continue
		}
		rev, err := binding.NextRevision(prev.revision)
		if err != nil { // only a binding at MaxRevision: deleting its key starts it over
			ld.log.Error("binding not written; delete its key and the resolver writes it anew", "federation", k.fed, "service", k.service, "region", k.region, "err", err)
			continue
		}
		b.Revision = rev
		data, _ := json.Marshal(b) // as canonical
		c.writes = append(c.writes, registry.BindingWrite{StoredBinding: registry.StoredBinding{Federation: k.fed, Service: k.service, Region: k.region, Value: data, ModifyIndex: prev.modifyIndex}})
		c.next = append(c.next, storedBinding{revision: b.Revision, content: content})
		c.written++
	}
	gone := slices.SortedFunc(maps.Keys(ld.stored), func(a, b bindingKey) int {
		return cmp.Or(cmp.Compare(a.fed, b.fed), cmp.Compare(a.service, b.service), cmp.Compare(a.region, b.region))
	})
	for _, k := range gone {
		switch sb := ld.stored[k]; {
		case seen[k]:
		case sb.modifyIndex == 0:
			delete(ld.stored, k) // gone from Consul already
		default:
			c.writes = append(c.writes, registry.BindingWrite{StoredBinding: registry.StoredBinding{Federation: k.fed, Service: k.service, Region: k.region, ModifyIndex: sb.modifyIndex}, Delete: true})
			c.next = append(c.next, storedBinding{})
		}
	}
	return c
}

// applied records a stored write and announces it.
func (ld *leader) applied(w registry.BindingWrite, next storedBinding, index uint64) {
	k := bindingKey{w.Federation, w.Service, w.Region}
	e := events.BindingsChanged{Federation: k.fed, Service: k.service, Region: k.region}
	if w.Delete {
		delete(ld.stored, k)
	} else {
		next.modifyIndex = index
		ld.stored[k] = next
		ld.writeIndex = max(ld.writeIndex, index)
		e.Revision, e.ModifyIndex, e.Written = next.revision, index, time.Now()
		if len(w.Value) <= events.MaxInlineBinding {
			e.Binding = w.Value
		}
	}
	ld.announce(e)
}

// announce publishes a bindings event. A failure is only logged: the
// binding is in Consul already, and listeners' anti-entropy finds it
// without the event.
func (l *Loop) announce(e events.BindingsChanged) {
	l.publish(events.BindingsSubject(e.Federation, e.Service), e.Encode())
}

// watchInputs sends the registry's Consul index each time it changes,
// replacing an index not yet taken. Consul failures are retried.
func (l *Loop) watchInputs(ctx context.Context, index uint64, out chan uint64) {
	b := retryBackoff()
	for ctx.Err() == nil {
		next, err := l.reg.Watch(ctx, index)
		if err != nil {
			l.pause(ctx, b.NextBackOff(), "watch the registry", err)
			continue
		}
		b.Reset()
		if next != index {
			index = next
			sendLatest(out, next)
		}
	}
}

// watchBindings sends the bindings' Consul index after every answer of
// its blocking query, replacing one not yet taken.
func (l *Loop) watchBindings(ctx context.Context, index uint64, out chan bindingsWake) {
	b := retryBackoff()
	for ctx.Err() == nil {
		next, err := l.reg.WatchBindings(ctx, index)
		if err != nil {
			l.pause(ctx, b.NextBackOff(), "watch the bindings", err)
			continue
		}
		b.Reset()
		sendLatest(out, bindingsWake{index: next, changed: next != index})
		index = next
	}
}

func (l *Loop) pause(ctx context.Context, wait time.Duration, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	l.log.Debug(fmt.Sprintf("resolver cannot %s; retrying", what), "err", err, "retry_in", wait)
	select {
	case <-ctx.Done():
	case <-time.After(wait):
	}
}

// sendLatest replaces what ch holds with v; ch has one sender and a buffer
// of one, so it never blocks.
func sendLatest[T any](ch chan T, v T) {
	select {
	case <-ch:
	default:
	}
	ch <- v
}
