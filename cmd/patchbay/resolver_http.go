package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/patchbay/patchbay/resolverd"
)

// serveHTTP listens on addr at once (so an address in use fails the
// command before anything else) and serves h until ctx ends; wg owns the
// serving goroutine.
func (a *app) serveHTTP(ctx context.Context, wg *sync.WaitGroup, addr, what string, h http.Handler) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageErrorf("%s address %s: %w", what, addr, err)
	}
	// Requests' contexts derive from ctx, so long-lived ones (the
	// console's event streams) end with it.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger().Error(what+" stopped", "err", err)
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // event streams end with their requests' contexts
	})
	return ln.Addr(), nil
}

// resolverMetrics serves the resolver's /metrics and /healthz on addr when
// it is set, returning the loop options that feed them.
func (a *app) resolverMetrics(ctx context.Context, wg *sync.WaitGroup, addr string) ([]resolverd.LoopOption, error) {
	if addr == "" {
		return nil, nil
	}
	m := resolverd.NewMetrics()
	bound, err := a.serveHTTP(ctx, wg, addr, "resolver HTTP", m.Handler())
	if err != nil {
		return nil, err
	}
	a.logger().Info("resolver metrics and health", "url", fmt.Sprintf("http://%s/metrics", bound))
	return m.Options(), nil
}
