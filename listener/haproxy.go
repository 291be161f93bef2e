package listener

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/patchbay/patchbay/model"
)

// Hitless HAProxy: whether a change goes through HAProxy's runtime API
// is the model's decision (model/file.go); this file executes it, and
// falls back to the reload on any runtime API failure.

// haproxyDrain bounds the wait for a removed server's connections to end.
const haproxyDrain = 10 * time.Second

// hitless applies a changed file's server changes over HAProxy's runtime
// API, when the model chose it, and reports whether that replaced the
// reload.
func (l *Listener) hitless(ctx context.Context, f *rendered) bool {
	if !model.Hitless(f.spec) || l.simulated {
		return false
	}
	changes, why := model.Runtime(f.spec, f.previous, f.existed, f.content)
	log := l.log.With("file", f.file.Destination)
	if changes == nil {
		log.Info("reloading HAProxy", "why", why)
		l.metrics.HAProxyApplied("reload")
		return false
	}
	drain := haproxyDrain
	if dd, err := time.ParseDuration(f.spec.Options["runtime_drain"]); err == nil {
		drain = dd
	}
	api := &haproxyAPI{socket: f.spec.Options["stats_socket"], timeout: 5 * time.Second}
	if err := applyServers(ctx, *changes, api, drain); err != nil {
		log.Warn("HAProxy runtime API failed; reloading instead", "err", err)
		l.metrics.HAProxyApplied("fallback")
		return false
	}
	log.Info("HAProxy servers changed over the runtime API, no reload", "added", changes.Added(), "removed", changes.Removed())
	l.metrics.HAProxyApplied("runtime")
	if f.report != nil {
		f.report.Apply = model.ApplyRuntime
	}
	return true
}

// apply checks that HAProxy runs the old servers of every backend it
// touches (else the file and the process disagree: reload), then deletes
// replaced servers, adds the new ones and deletes the removed ones last,
// so that a backend never has fewer servers than needed for long.
func applyServers(ctx context.Context, c model.HAProxyChanges, api *haproxyAPI, drain time.Duration) error {
	touched := slices.Sorted(maps.Keys(c.Add))
	for be := range c.Del {
		if !slices.Contains(touched, be) {
			touched = append(touched, be)
		}
	}
	for _, be := range touched {
		running, err := api.servers(ctx, be)
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
				if err := api.delServer(ctx, be, s.Name, drain); err != nil {
					return err
				}
			}
			if err := api.addServer(ctx, be, s); err != nil {
				return err
			}
		}
	}
	for _, be := range touched {
		for _, name := range c.Del[be] {
			if slices.ContainsFunc(c.Add[be], func(s model.HAProxyServer) bool { return s.Name == name }) {
				continue // replaced above
			}
			if err := api.delServer(ctx, be, name, drain); err != nil {
				return err
			}
		}
	}
	return nil
}
