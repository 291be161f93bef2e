package listener

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/templates"
)

// Load-balancer safety of a run, beyond rendering:
//
//   - Policy beats last-good. The min guard and an unresolved requirement
//     keep a file's last good version, which protects a load balancer
//     against its providers dying. A provider the resolver withheld while
//     it is still live was dropped by policy (made private, moved to
//     another federation, unpublished), and the binding lists it; a file
//     that still routes to it is rendered anyway, even with an empty route.
//   - One bad upstream never blocks the rest: in a template with a check,
//     a provider whose host name does not resolve is left out of the
//     render and reported, rather than failing the check for everyone.

// policyRender renders, for a binding that is not ready, the templates
// whose installed file routes to a provider that policy now forbids. It
// reports whether it rendered any; the service's other files keep their
// last good version and its provision command does not run.
func (l *Listener) policyRender(ctx context.Context, cfg *Config, p *plan) bool {
	var vars []string
	for name, v := range p.binding.Vars {
		if !v.Resolved && !v.Optional && v.Select == "all" {
			vars = append(vars, name)
		}
	}
	names := l.evicting(cfg, p, vars)
	if len(names) == 0 {
		return false
	}
	p.relaxed, p.due, p.after = true, false, ResultSkipped
	p.report.Reason = fmt.Sprintf("%s; %s rendered without the providers policy no longer allows",
		strings.TrimSuffix(unresolvedReason(p.binding.Unresolved), "; its files keep their last good version"), strings.Join(names, ", "))
	for _, name := range names {
		p.report.Templates = append(p.report.Templates, TemplateRun{Name: name, Destination: p.m.Templates[name].Destination})
	}
	for i, name := range names {
		if f := l.render(ctx, cfg, p, name, &p.report.Templates[i]); f != nil {
			p.files = append(p.files, f)
		}
	}
	return true
}

// evicting lists the templates of p whose installed file contains the
// address of a live provider of vars that the binding withholds by policy.
func (l *Listener) evicting(cfg *Config, p *plan, vars []string) []string {
	if len(vars) == 0 || len(p.m.Templates) == 0 {
		return nil
	}
	hostPorts, omitted := forbidden(p.binding, vars)
	if omitted > 0 {
		l.log.Warn("the binding lists only part of the providers policy withholds; a file may keep routing to one left out", "service", p.m.ID, "left_out", omitted)
	}
	if len(hostPorts) == 0 {
		return nil
	}
	var names []string
	for _, name := range slices.Sorted(maps.Keys(p.m.Templates)) {
		dest := p.m.Templates[name].Destination
		if dest == "" {
			continue
		}
		b, _, err := templates.ReadInstalled(templates.File{Root: cfg.confinedRoot(), Destination: cfg.destination(dest)})
		if err != nil {
			continue // nothing installed: nothing to evict
		}
		if hp, ok := containsAny(string(b), hostPorts); ok {
			l.log.Warn("installed file routes to a provider policy no longer allows; rendering without it", "service", p.m.ID, "template", name, "upstream", hp)
			l.metrics.PolicyEvicted()
			names = append(names, name)
		}
	}
	return names
}

// forbidden returns the host:port of every provider of vars that the
// binding withholds by policy (the resolver lists only live ones, so a
// kept file still keeps those that died) and no granted provider shares,
// and how many withheld providers the binding left out for size.
func forbidden(b *binding.Binding, vars []string) ([]string, int) {
	var out []string
	omitted := 0
	for _, name := range vars {
		v := b.Vars[name]
		omitted += v.Withheld.LeftOut()
		granted := map[string]bool{}
		for _, pr := range v.Providers {
			if u, ok := templates.UpstreamOf(pr); ok {
				granted[u.HostPort] = true
			}
		}
		for _, w := range v.Withheld.List() {
			if u, ok := templates.UpstreamOf(w.Provider()); ok && !granted[u.HostPort] {
				out = append(out, u.HostPort)
			}
		}
	}
	return out, omitted
}

// containsAny finds a host:port in a config file as a whole token: not
// followed by another digit nor preceded by part of a longer host name.
func containsAny(file string, hostPorts []string) (string, bool) {
	for _, hp := range hostPorts {
		for i := 0; ; {
			j := strings.Index(file[i:], hp)
			if j < 0 {
				break
			}
			start, end := i+j, i+j+len(hp)
			before := start == 0 || !isHostByte(file[start-1])
			after := end == len(file) || file[end] < '0' || file[end] > '9'
			if before && after {
				return hp, true
			}
			i = start + 1
		}
	}
	return "", false
}

func isHostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':'
}

// relax is the binding a policy render uses: an unresolved select-all
// requirement is an empty route rather than a kept file.
func relax(b *binding.Binding) *binding.Binding {
	out := *b
	out.Vars = maps.Clone(b.Vars)
	for name, v := range out.Vars {
		if !v.Resolved && v.Select == "all" {
			v.Resolved, v.Providers, v.Value = true, nil, ""
			out.Vars[name] = v
		}
	}
	return &out
}

// lbData adjusts a template's data for load-balancer safety: a policy
// render relaxes the binding and the min guard; route conflicts are
// noted in tr; a template with a check loses the providers whose host
// name does not resolve, noted in tr.
func (l *Listener) lbData(ctx context.Context, p *plan, check bool, data templates.Data, tr *TemplateRun) templates.Data {
	if p.relaxed {
		data.Binding, data.Min = relax(data.Binding), 0
	}
	data.Warn = func(conflict string) {
		if slices.Contains(tr.Conflicts, conflict) {
			return // rendered again without the min guard
		}
		tr.Conflicts = append(tr.Conflicts, conflict)
		p.report.Reason = strings.TrimPrefix(p.report.Reason+"; "+tr.Name+": "+conflict, "; ")
		l.log.Warn("route conflict", "service", p.m.ID, "template", tr.Name, "conflict", conflict)
	}
	if !check || data.Binding == nil {
		return data
	}
	var left []string
	data.Binding, left = l.hosts.screen(ctx, data.Binding)
	if len(left) > 0 {
		tr.Excluded = left
		note := "left out of " + tr.Name + ": " + strings.Join(left, ", ")
		p.report.Reason = strings.TrimPrefix(p.report.Reason+"; "+note, "; ")
		l.log.Warn("upstreams left out: their host names do not resolve", "service", p.m.ID, "template", tr.Name, "left_out", strings.Join(left, "; "))
	}
	return data
}

// evictsOnGuard reports whether a render that failed the min guard must
// be done again without it: the installed file routes to a provider
// policy no longer allows.
func (l *Listener) evictsOnGuard(cfg *Config, p *plan, name string, err error) bool {
	if !errors.Is(err, templates.ErrTooFewUpstreams) || p.relaxed {
		return false
	}
	var vars []string
	for v, val := range p.binding.Vars {
		if val.Select == "all" {
			vars = append(vars, v)
		}
	}
	return slices.Contains(l.evicting(cfg, p, vars), name)
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
		v.Value = joinValues(kept)
		out.Vars[name] = v
	}
	if out == nil {
		return b, nil
	}
	return out, left
}

func joinValues(ps []binding.Provider) string {
	vals := make([]string, len(ps))
	for i, p := range ps {
		vals[i] = p.Value
	}
	return strings.Join(vals, ",")
}

// leftOut counts the upstreams a run left out of its renders.
func leftOut(run *RunReport) int {
	n := 0
	for _, s := range run.Services {
		for _, t := range s.Templates {
			n += len(t.Excluded)
		}
	}
	return n
}
