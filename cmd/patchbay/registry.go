package main

import (
	"github.com/patchbay/patchbay/registry"
)

// registry returns a client for the configured Consul.
func (a *app) registry() (*registry.Client, error) {
	return registry.New(
		registry.WithAddress(a.g.ConsulAddr),
		registry.WithToken(a.g.ConsulToken),
		registry.WithPrefix(a.g.Prefix),
		registry.WithTimeout(a.g.Timeout),
		registry.WithLogger(a.logger()),
	)
}
