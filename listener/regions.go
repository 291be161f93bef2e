package listener

// noteRegions warns when a service's run uses a binding of another region
// than the node's: the resolver binds a region only where the service has
// instances, so a node in region eu hosting a service with no instance in
// eu (no port in listener.yaml) gets the region-less binding, in which
// prefer-local prefers no region and local-only takes only providers
// without one. It says so when that starts, not on every run: the last
// run's region is in seen, which the caller has not replaced yet.
func (l *Listener) noteRegions(cfg *Config, plans []*plan) {
	if cfg.Region == "" {
		return
	}
	seen := *l.seen.Load()
	for _, p := range plans {
		b := p.hosted.Binding
		if b == nil || b.Region == cfg.Region {
			continue
		}
		if was, ok := seen[p.sc.Service]; ok && was.region == b.Region && was.bindingIndex != 0 {
			continue
		}
		l.log.Warn("this node's region has no binding of the service; using the region-less one, whose prefer-local requirements prefer no region and local-only ones take only providers without a region. The resolver binds a region where the service has live instances: give the service a port in listener.yaml to register one here",
			"service", p.sc.Service, "region", cfg.Region)
	}
}
