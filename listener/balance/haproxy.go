package balance

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/model"
)

// Hitless HAProxy: whether a change goes through HAProxy's runtime API
// is the model's decision (model/file.go); this file executes it, and
// falls back to the reload on any runtime API failure.

// DefaultDrain bounds the wait for a removed server's connections to end,
// unless a template's runtime_drain option says otherwise.
const DefaultDrain = 10 * time.Second

// Change is a changed file that a reload would apply.
type Change struct {
	Spec        manifest.TemplateFile
	Destination string
	Previous    []byte // installed before the run
	Existed     bool
	Content     []byte
	Report      *model.TemplateRun // nil: not reported
}

// Hitless applies a changed file's server changes over HAProxy's runtime
// API, when the model chose it, and reports whether that replaced the
// reload.
func (b *Balancer) Hitless(ctx context.Context, f Change) bool {
	if !model.Hitless(f.Spec) || b.simulated {
		return false
	}
	changes, why := model.Runtime(f.Spec, f.Previous, f.Existed, f.Content)
	log := b.log.With("file", f.Destination)
	if changes == nil {
		log.Info("reloading HAProxy", "why", why)
		b.metrics.HAProxyApplied("reload")
		return false
	}
	drain := DefaultDrain
	if dd, err := time.ParseDuration(f.Spec.Options["runtime_drain"]); err == nil {
		drain = dd
	}
	api := &HAProxyAPI{Socket: f.Spec.Options["stats_socket"], Timeout: 5 * time.Second}
	if err := ApplyServers(ctx, *changes, api, drain); err != nil {
		log.Warn("HAProxy runtime API failed; reloading instead", "err", err)
		b.metrics.HAProxyApplied("fallback")
		return false
	}
	log.Info("HAProxy servers changed over the runtime API, no reload", "added", changes.Added(), "removed", changes.Removed())
	b.metrics.HAProxyApplied("runtime")
	if f.Report != nil {
		f.Report.Apply = model.ApplyRuntime
	}
	return true
}

// ApplyServers checks that HAProxy runs the old servers of every backend it
// touches (else the file and the process disagree: reload), then deletes
// replaced servers, adds the new ones and deletes the removed ones last,
// so that a backend never has fewer servers than needed for long.
func ApplyServers(ctx context.Context, c model.HAProxyChanges, api *HAProxyAPI, drain time.Duration) error {
	touched := slices.Sorted(maps.Keys(c.Add))
	for be := range c.Del {
		if !slices.Contains(touched, be) {
			touched = append(touched, be)
		}
	}
	for _, be := range touched {
		running, err := api.Servers(ctx, be)
		if err != nil {
			return err
		}
		var want []string
		for _, s := range c.Before[be] {
			want = append(want, s.Name)
		}
		if slices.Sort(running); !slices.Equal(running, slices.Sorted(slices.Values(want))) {
			return fmt.Errorf("%w: backend %s runs servers %v, the installed file has %v", ErrHAProxyAPI, be, running, want)
		}
	}
	for _, be := range touched {
		for _, s := range c.Add[be] {
			if slices.Contains(c.Del[be], s.Name) {
				if err := api.DelServer(ctx, be, s.Name, drain); err != nil {
					return err
				}
			}
			if err := api.AddServer(ctx, be, s); err != nil {
				return err
			}
		}
	}
	for _, be := range touched {
		for _, name := range c.Del[be] {
			if slices.ContainsFunc(c.Add[be], func(s model.HAProxyServer) bool { return s.Name == name }) {
				continue // replaced above
			}
			if err := api.DelServer(ctx, be, name, drain); err != nil {
				return err
			}
		}
	}
	return nil
}
