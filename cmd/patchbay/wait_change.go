package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/tracking"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolver"
)

// A change made by this process (publish, datastore set) is followed in
// two stages: the resolver's, until it stored the bindings the change
// alters (their revisions identify the change), then the nodes', as
// `patchbay wait` does with those revisions.
//
// Which services the change alters is what resolving the registry before
// and after the write tells apart, as plan does: both sides see instances
// alike, so a view of liveness that differs from the resolver's (a shared
// agent node not configured here) cancels out. Which regions, and which
// revisions, is what the resolver then writes.

type bindingKey struct{ fed, service, region string }

// changeBase is what the registry held before a change.
type changeBase struct {
	reg      *registry.Client
	resolved map[bindingKey][]byte // the before side's resolution
	stored   map[bindingKey]uint64 // stored revisions
}

// beforeChange reads the registry before a change is written. Its client
// logs nothing below errors: a wait reads the snapshot twice and the
// bindings every poll, and their warnings (instance keys not live) are
// resolve's and explain's to show.
func (a *app) beforeChange(ctx context.Context) (*changeBase, error) {
	reg, err := a.registry(registry.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, err
	}
	b := &changeBase{reg: reg}
	if b.resolved, err = a.resolveNow(ctx, reg); err != nil {
		return nil, err
	}
	if b.stored, err = a.storedRevisions(ctx, reg); err != nil {
		return nil, err
	}
	return b, nil
}

// resolveNow resolves the registry as it is, for the --federation.
func (a *app) resolveNow(ctx context.Context, reg *registry.Client) (map[bindingKey][]byte, error) {
	snap, err := reg.Snapshot(ctx)
	if errors.Is(err, registry.ErrPermissionDenied) {
		snap, err = reg.FederationSnapshot(ctx, a.g.Federation)
	}
	if err != nil {
		return nil, err
	}
	out := map[bindingKey][]byte{}
	for _, b := range resolver.Resolve(snap).Bindings {
		if b.Federation == a.g.Federation {
			out[bindingKey{b.Federation, b.Service, b.Region}] = contentOf(b)
		}
	}
	return out, nil
}

// storedRevisions reads the revision of every stored binding of the
// --federation.
func (a *app) storedRevisions(ctx context.Context, reg *registry.Client) (map[bindingKey]uint64, error) {
	stored, _, _, err := reg.Bindings(ctx)
	if err != nil {
		return nil, err
	}
	out := map[bindingKey]uint64{}
	for _, sb := range stored {
		if sb.Federation != a.g.Federation {
			continue
		}
		if b, err := binding.DecodeBinding(sb.Key, sb.Value); err == nil { // the resolver rewrites one it cannot read
			out[bindingKey{sb.Federation, sb.Service, sb.Region}] = b.Revision
		}
	}
	return out, nil
}

// contentOf is a binding as the resolver compares it: without revision.
func contentOf(b binding.Binding) []byte {
	b.Revision = 0
	data, _ := json.Marshal(b) // strings, numbers, maps and slices
	return data
}

// alteredServices are the services whose resolution differs between
// before and after.
func alteredServices(before, after map[bindingKey][]byte) []string {
	set := map[string]bool{}
	for k, v := range after {
		if !bytes.Equal(v, before[k]) {
			set[k.service] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// storedChange waits until the resolver stored a new revision of every
// altered service, and returns the revisions written since base.
func (a *app) storedChange(ctx context.Context, base *changeBase, services []string, o waitOptions) ([]tracking.Target, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	for {
		now, err := a.storedRevisions(ctx, base.reg)
		if err == nil {
			targets, missing := writtenSince(base.stored, now, services)
			if len(missing) == 0 {
				return targets, nil
			}
			err = fmt.Errorf("%w after %s: the resolver has not stored a new binding of %s; is 'patchbay resolver' running? (its log says why)",
				errWaitTimeout, o.timeout, strings.Join(missing, ", "))
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(o.poll):
		}
	}
}

// writtenSince lists the revisions of services stored after before, and
// the services with none yet.
func writtenSince(before, now map[bindingKey]uint64, services []string) (targets []tracking.Target, missing []string) {
	written := map[string]bool{}
	for k, rev := range now {
		if rev > before[k] && slices.Contains(services, k.service) {
			targets = append(targets, tracking.Target{Service: k.service, Region: k.region, Revision: rev})
			written[k.service] = true
		}
	}
	for _, s := range services {
		if !written[s] {
			missing = append(missing, s)
		}
	}
	slices.SortFunc(targets, func(x, y tracking.Target) int { return strings.Compare(x.String(), y.String()) })
	return targets, missing
}

// followChange waits for the resolver, then for the nodes, after a change
// made at since on top of base.
func (a *app) followChange(ctx context.Context, base *changeBase, since time.Time, o waitOptions) error {
	after, err := a.resolveNow(ctx, base.reg)
	if err != nil {
		return err
	}
	var targets []tracking.Target
	if services := alteredServices(base.resolved, after); len(services) > 0 {
		if targets, err = a.storedChange(ctx, base, services, o); err != nil {
			return err
		}
	}
	o.timeout -= time.Since(since)
	return a.waitApplied(ctx, targets, since, o)
}
