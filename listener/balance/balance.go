// Package balance is the listener's load balancing: a run's templates
// that route to upstreams keep routing when one upstream is bad (a host
// name that does not resolve is left out, a route conflict is reported,
// what policy evicts is logged), and HAProxy's servers change over its
// runtime API instead of a reload when the model chose it.
package balance

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/model"
	"github.com/patchbay/patchbay/templates"
)

// Load-balancer safety of a run, beyond rendering (what policy evicts is
// the model's decision, model/policy.go): one bad upstream never blocks
// the rest. In a template with a check, a provider whose host name does
// not resolve is left out of the render and reported, rather than failing
// the check for everyone.

// Metrics is what load balancing counts; the listener's metrics hold it.
type Metrics interface {
	HAProxyApplied(how string)
	PolicyEvicted()
}

// Balancer applies a node's load-balancing rules to its runs. Its host
// name answers are kept across runs; it is safe for concurrent use.
type Balancer struct {
	log       *slog.Logger
	metrics   Metrics
	hosts     *hostResolver
	simulated bool // no runtime API change: the commands are only logged
}

// New returns a Balancer; simulated (patchbay dev) never changes a
// running HAProxy.
func New(log *slog.Logger, metrics Metrics, simulated bool) *Balancer {
	return &Balancer{log: log, metrics: metrics, hosts: newHostResolver(), simulated: simulated}
}

// NoteEvictions logs and counts what the model's policy render evicts.
func (b *Balancer) NoteEvictions(service string, ev model.Eviction) {
	if ev.LeftOut > 0 {
		b.log.Warn("the binding lists only part of the providers policy withholds; a file may keep routing to one left out", "service", service, "left_out", ev.LeftOut)
	}
	for _, name := range ev.Templates {
		b.log.Warn("installed file routes to a provider policy no longer allows; rendering without it", "service", service, "template", name, "upstream", ev.Upstreams[name])
		b.metrics.PolicyEvicted()
	}
}

// Data adjusts a template's data for load-balancer safety: route
// conflicts are noted in tr; a template with a check loses the providers
// whose host name does not resolve, noted in tr. Each note is added to
// the service's reason too.
func (b *Balancer) Data(ctx context.Context, service string, reason *string, check bool, data templates.Data, tr *model.TemplateRun) templates.Data {
	data.Warn = func(conflict string) {
		if slices.Contains(tr.Conflicts, conflict) {
			return // rendered again without the min guard
		}
		tr.Conflicts = append(tr.Conflicts, conflict)
		*reason = strings.TrimPrefix(*reason+"; "+tr.Name+": "+conflict, "; ")
		b.log.Warn("route conflict", "service", service, "template", tr.Name, "conflict", conflict)
	}
	if !check || data.Binding == nil {
		return data
	}
	var left []string
	data.Binding, left = b.hosts.screen(ctx, data.Binding)
	if len(left) > 0 {
		tr.Excluded = left
		note := "left out of " + tr.Name + ": " + strings.Join(left, ", ")
		*reason = strings.TrimPrefix(*reason+"; "+note, "; ")
		b.log.Warn("upstreams left out: their host names do not resolve", "service", service, "template", tr.Name, "left_out", strings.Join(left, "; "))
	}
	return data
}

// hostResolver remembers, for a while, which host names resolve, so that
// a burst of runs does not ask DNS for every upstream every time.
type hostResolver struct {
	mu      sync.Mutex
	answers map[string]hostAnswer
	ttl     time.Duration
	lookup  func(ctx context.Context, host string) ([]string, error)
}

type hostAnswer struct {
	err error
	at  time.Time
}

func newHostResolver() *hostResolver {
	return &hostResolver{answers: map[string]hostAnswer{}, ttl: 10 * time.Second, lookup: net.DefaultResolver.LookupHost}
}

// resolves reports whether host resolves (an IP always does).
func (h *hostResolver) resolves(ctx context.Context, host string) error {
	if net.ParseIP(host) != nil {
		return nil
	}
	h.mu.Lock()
	a, ok := h.answers[host]
	h.mu.Unlock()
	if ok && time.Since(a.at) < h.ttl {
		return a.err
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := h.lookup(lctx, host)
	if err != nil && ctx.Err() != nil {
		return nil // the run is ending: no verdict, nothing cached
	}
	h.mu.Lock()
	h.answers[host] = hostAnswer{err: err, at: time.Now()}
	h.mu.Unlock()
	return err
}

// screen returns b without the select-all providers whose host does not
// resolve, and a note for each one left out.
func (h *hostResolver) screen(ctx context.Context, b *binding.Binding) (*binding.Binding, []string) {
	var out *binding.Binding
	var left []string
	for _, name := range slices.Sorted(maps.Keys(b.Vars)) {
		v := b.Vars[name]
		if v.Select != "all" {
			continue
		}
		kept := make([]binding.Provider, 0, len(v.Providers))
		for _, pr := range v.Providers {
			if u, ok := templates.UpstreamOf(pr); ok {
				if err := h.resolves(ctx, u.Host); err != nil {
					left = append(left, fmt.Sprintf("%s %s (%s does not resolve)", pr.Instance, pr.Key, u.Host))
					continue
				}
			}
			kept = append(kept, pr)
		}
		if len(kept) == len(v.Providers) {
			continue
		}
		if out == nil {
			c := *b
			c.Vars = maps.Clone(b.Vars)
			out = &c
		}
		v.Providers = kept
		v.Value = binding.JoinValues(kept)
		out.Vars[name] = v
	}
	if out == nil {
		return b, nil
	}
	return out, left
}

// LeftOut counts the upstreams a run left out of its renders.
func LeftOut(services []model.ServiceRun) int {
	n := 0
	for _, s := range services {
		for _, t := range s.Templates {
			n += len(t.Excluded)
		}
	}
	return n
}
