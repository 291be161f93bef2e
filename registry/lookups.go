package registry

import (
	"context"
	"fmt"
	"sync"

	dep "github.com/hashicorp/consul-template/dependency"
)

// Lookups fetches consul-template dependencies (key, service, ls, ...) for
// rendering: each once, never waiting for changes, with a missing key an
// error rather than consul-template's endless wait.
type Lookups struct {
	clients *dep.ClientSet
	addr    string
	wg      sync.WaitGroup
}

// Lookups returns a fetcher over this client's Consul (address, token, TLS).
// Close it when done.
func (c *Client) Lookups() (*Lookups, error) {
	tls := c.config.TLSConfig
	clients := dep.NewClientSet()
	err := clients.CreateConsulClient(&dep.CreateConsulClientInput{
		Address:    c.config.Address,
		Token:      c.config.Token,
		SSLEnabled: c.config.Scheme == "https",
		SSLVerify:  !tls.InsecureSkipVerify,
		SSLCert:    tls.CertFile,
		SSLKey:     tls.KeyFile,
		SSLCACert:  tls.CAFile,
		SSLCAPath:  tls.CAPath,
		ServerName: tls.Address,
	})
	if err != nil {
		return nil, fmt.Errorf("registry: lookups client for %s: %w", c.addr, err)
	}
	return &Lookups{clients: clients, addr: c.addr}, nil
}

// Fetch fetches d once. It returns when ctx is done even if Consul does not
// answer: consul-template's client takes no context, so the request itself
// finishes in the background (Close waits for it).
func (l *Lookups) Fetch(ctx context.Context, d dep.Dependency) (any, error) {
	type result struct {
		data any
		meta *dep.ResponseMetadata
		err  error
	}
	switch d.Type() {
	case dep.TypeConsul, dep.TypeLocal:
	default: // consul-template would dereference a Vault or Nomad client patchbay never makes
		return nil, fmt.Errorf("%w: only Consul and file lookups are available to patchbay templates", ErrUnsupported)
	}
	done := make(chan result, 1) // the fetch never blocks on sending
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		data, meta, err := d.Fetch(l.clients, &dep.QueryOptions{})
		done <- result{data, meta, err}
	}()
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("no answer from consul at %s: %w", l.addr, ctx.Err())
	case r := <-done:
		switch {
		case r.err != nil:
			return nil, r.err
		case r.data == nil && r.meta != nil && r.meta.BlockOnNil:
			return nil, fmt.Errorf("%w: no such key in consul at %s; create it, or use keyOrDefault", ErrNotFound, l.addr)
		}
		return r.data, nil
	}
}

// Close releases connections and waits for fetches still in flight.
func (l *Lookups) Close() {
	l.clients.Stop()
	l.wg.Wait()
}
