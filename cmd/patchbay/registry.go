package main

import (
	"log/slog"

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

// logger writes structured logs to stderr.
func (a *app) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: &a.logLevel}))
}
