package registry

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

// maxTxnOps is Consul's limit on operations in one transaction.
const maxTxnOps = 64

// HostedService is what a listener reads about one service it hosts.
type HostedService struct {
	Service string
	// Manifest is nil when the service is not published.
	Manifest *manifest.Manifest
	// ManifestIndex is the manifest key's modify index (0: not published).
	ManifestIndex uint64
	// Binding is the stored binding for the node's region, else the one
	// for no region; nil when neither is stored yet.
	Binding *StoredBinding
	// Problem says why a stored value could not be used ("" if none).
	Problem string
}

// ReadNode reads the manifests and bindings of the services one node hosts
// in one consistent transaction, so a provision run never mixes a binding
// from before a change with one from after it. More services than one
// transaction holds are read in consecutive transactions.
func (c *Client) ReadNode(ctx context.Context, fed string, services []string, region string) ([]HostedService, error) {
	regions := binding.ReadRegions(region)
	perService := 1 + len(regions)
	out := make([]HostedService, 0, len(services))
	for start := 0; start < len(services); {
		end := min(len(services), start+maxTxnOps/perService)
		read, err := c.readNodeTxn(ctx, fed, services[start:end], regions)
		if err != nil {
			return nil, err
		}
		out = append(out, read...)
		start = end
	}
	return out, nil
}

func (c *Client) readNodeTxn(ctx context.Context, fed string, services, regions []string) ([]HostedService, error) {
	var ops api.TxnOps
	for _, s := range services {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGetOrEmpty, Key: c.keys.manifest(fed, s)}})
		for _, r := range regions {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGetOrEmpty, Key: c.keys.binding(fed, s, r)}})
		}
	}
	q, cancel := c.query(ctx)
	defer cancel()
	ok, resp, _, err := c.consul.Txn().Txn(ops, q)
	if err != nil {
		return nil, c.fail(ctx, err, "read the bindings of %v", services)
	}
	if !ok || len(resp.Results) != len(ops) {
		return nil, fmt.Errorf("registry: reading the bindings of %v: consul rolled the read back: %v", services, resp.Errors)
	}
	found := map[string]*api.KVPair{}
	for _, r := range resp.Results {
		if r.KV != nil && r.KV.ModifyIndex != 0 { // GetOrEmpty answers a missing key with index 0
			found[r.KV.Key] = r.KV
		}
	}
	out := make([]HostedService, len(services))
	for i, s := range services {
		h := HostedService{Service: s}
		if p := found[c.keys.manifest(fed, s)]; p != nil {
			h.ManifestIndex = p.ModifyIndex
			m, err := DecodeManifest(p.Key, fed, s, p.Value)
			if err != nil {
				h.Problem = "invalid manifest: " + err.Error()
			} else {
				h.Manifest = m
			}
		}
		for _, r := range regions {
			p := found[c.keys.binding(fed, s, r)]
			if p == nil {
				continue
			}
			if _, err := binding.DecodeBinding(p.Key, p.Value); err != nil {
				// Not held at all: a listener holding a refused binding's
				// revision (one past 2^53-1, say) would take the
				// resolver's rewrite for an older one.
				h.Problem = cmp.Or(h.Problem, err.Error())
				break
			}
			h.Binding = &StoredBinding{Federation: fed, Service: s, Region: r, Value: p.Value, ModifyIndex: p.ModifyIndex, Key: p.Key}
			break
		}
		out[i] = h
	}
	return out, nil
}

// HealthCheckID is the ID of the manifest health check of an instance.
func HealthCheckID(instanceID string) string { return instanceID + ":health" }

// CheckState is a health check as the catalog sees it.
type CheckState struct {
	Status string // api.HealthPassing, HealthWarning, HealthCritical; "" when the check is not registered
	Output string
}

// WatchHealth returns the state of an instance's manifest health check
// once it differs from the state at index, or after wait; pass the index
// it returns to the next call. Index 0 answers at once.
func (c *Client) WatchHealth(ctx context.Context, service, instanceID string, index uint64, wait time.Duration) (CheckState, uint64, error) {
	q := (&api.QueryOptions{WaitIndex: index, WaitTime: wait, RequireConsistent: index == 0}).WithContext(ctx)
	checks, meta, err := c.consul.Health().Checks(service, q)
	if err != nil {
		return CheckState{}, index, c.fail(ctx, err, "read the health of %s", instanceID)
	}
	var st CheckState
	for _, ch := range checks {
		if ch.CheckID == HealthCheckID(instanceID) {
			st = CheckState{Status: ch.Status, Output: ch.Output}
		}
	}
	return st, meta.LastIndex, nil
}
