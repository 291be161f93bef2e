package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/internal/tracking"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/resolver"
)

// A change made by this process (publish, datastore set) is followed in
// two stages: the resolver's, until it wrote every binding the change
// alters (their revisions identify the change), then the nodes', as
// `patchbay wait` does with those revisions.

type bindingKey struct{ fed, service, region string }

// storedRev is a stored binding's revision and content without it.
type storedRev struct {
	revision uint64
	content  []byte
}

// storedBindings reads every stored binding of the federation.
func (a *app) storedBindings(ctx context.Context, reg *registry.Client) (map[bindingKey]storedRev, error) {
	stored, _, _, err := reg.Bindings(ctx)
	if err != nil {
		return nil, err
	}
	out := map[bindingKey]storedRev{}
	for _, sb := range stored {
		if sb.Federation != a.g.Federation {
			continue
		}
		b, err := resolver.DecodeBinding(sb.Key, sb.Value)
		if err != nil {
			continue // the resolver rewrites a binding it cannot read
		}
		rev := b.Revision
		out[bindingKey{sb.Federation, sb.Service, sb.Region}] = storedRev{revision: rev, content: contentOf(*b)}
	}
	return out, nil
}

// contentOf is a binding as the resolver compares it: without revision.
func contentOf(b resolver.Binding) []byte {
	b.Revision = 0
	data, _ := json.Marshal(b) // strings, numbers, maps and slices
	return data
}

// changedBindings waits until the resolver stored every binding that
// differs from before once the change is made, and returns their
// revisions. It resolves the current snapshot itself to know which
// bindings the change alters: a binding the resolver rewrote since before,
// or whose stored content is what resolving gives, is done.
func (a *app) changedBindings(ctx context.Context, reg *registry.Client, before map[bindingKey]storedRev, o waitOptions) ([]tracking.Target, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	for {
		targets, pending, err := a.resolverPass(ctx, reg, before)
		if err == nil && len(pending) == 0 {
			return targets, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w after %s: the resolver has not stored the bindings of %s; is 'patchbay resolver' running? (patchbay status, and its log)",
				errWaitTimeout, o.timeout, strings.Join(pending, ", "))
		}
		if err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(o.poll / 2):
		}
	}
}

// resolverPass compares one resolution of the current snapshot with the
// stored bindings: the revisions of the changed bindings stored so far,
// and the bindings still to be written.
func (a *app) resolverPass(ctx context.Context, reg *registry.Client, before map[bindingKey]storedRev) (targets []tracking.Target, pending []string, err error) {
	snap, err := a.snapshot(ctx)
	if err != nil {
		return nil, nil, err
	}
	now, err := a.storedBindings(ctx, reg)
	if err != nil {
		return nil, nil, err
	}
	for _, b := range resolver.Resolve(snap).Bindings {
		if b.Federation != a.g.Federation {
			continue
		}
		k := bindingKey{b.Federation, b.Service, b.Region}
		want, was, is := contentOf(b), before[k], now[k]
		if bytes.Equal(want, was.content) && is.revision == was.revision {
			continue // the change does not alter this binding
		}
		if is.revision > was.revision || (is.revision > 0 && bytes.Equal(want, is.content)) {
			targets = append(targets, tracking.Target{Service: b.Service, Region: b.Region, Revision: is.revision})
			continue
		}
		pending = append(pending, tracking.Target{Service: b.Service, Region: b.Region}.Name())
	}
	slices.SortFunc(targets, func(x, y tracking.Target) int { return strings.Compare(x.String(), y.String()) })
	return targets, pending, nil
}

// followChange waits for the resolver, then for the nodes, after a change
// made at since; before is what was stored before it.
func (a *app) followChange(ctx context.Context, before map[bindingKey]storedRev, since time.Time, o waitOptions) error {
	reg, err := a.registry()
	if err != nil {
		return err
	}
	start := time.Now()
	targets, err := a.changedBindings(ctx, reg, before, o)
	if err != nil {
		return err
	}
	o.timeout -= time.Since(start)
	return a.waitApplied(ctx, targets, since, o)
}
