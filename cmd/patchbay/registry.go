package main

import (
	"github.com/patchbay/patchbay/registry"
)

// registry returns a client for the configured Consul; opts come last.
func (a *app) registry(opts ...registry.Option) (*registry.Client, error) {
	return registry.New(append([]registry.Option{
		registry.WithAddress(a.g.ConsulAddr),
		registry.WithToken(a.g.ConsulToken),
		registry.WithPrefix(a.g.Prefix),
		registry.WithTimeout(a.g.Timeout),
		registry.WithLogger(a.logger()),
	}, opts...)...)
}
