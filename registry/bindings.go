package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/consul/api"
	"github.com/patchbay/patchbay/binding"
)

// StoredBinding is a binding document as stored in Consul. The registry
// does not interpret Value (the resolver owns its format); ModifyIndex is
// what a check-and-set write compares against.
type StoredBinding struct {
	Federation  string
	Service     string
	Region      string
	Value       []byte
	ModifyIndex uint64 // 0: not stored yet
	// Key is the Consul key it was read from, to name it in errors; ""
	// for one a bindings event carried.
	Key string
}

// Bindings reads every stored binding, and the Consul index of the read.
func (c *Client) Bindings(ctx context.Context) ([]StoredBinding, []binding.SkippedKey, uint64, error) {
	q, cancel := c.query(ctx)
	defer cancel()
	pairs, meta, err := c.consul.KV().List(c.keys.bindings(), q)
	if err != nil {
		return nil, nil, 0, c.fail(ctx, err, "read %s", c.keys.bindings())
	}
	if err := c.unlisted(meta, c.keys.bindings()); err != nil {
		return nil, nil, 0, err
	}
	var (
		out     []StoredBinding
		skipped []binding.SkippedKey
	)
	for _, p := range pairs {
		seg, err := parts(p.Key, c.keys.bindings(), 3)
		if err != nil {
			skipped = append(skipped, binding.SkippedKey{Key: p.Key, Reason: err.Error()})
			continue
		}
		out = append(out, StoredBinding{Federation: seg[0], Service: seg[1], Region: regionFromKey(seg[2]), Value: p.Value, ModifyIndex: p.ModifyIndex, Key: p.Key})
	}
	return out, skipped, meta.LastIndex, nil
}

// Binding reads one stored binding; nil when there is none.
func (c *Client) Binding(ctx context.Context, fed, service, region string) (*StoredBinding, error) {
	pair, err := c.get(ctx, c.keys.binding(fed, service, region))
	if err != nil || pair == nil {
		return nil, err
	}
	return &StoredBinding{Federation: fed, Service: service, Region: region, Value: pair.Value, ModifyIndex: pair.ModifyIndex, Key: pair.Key}, nil
}

// BindingWrite is one change of a resolver pass: b is written (or, with
// Delete, removed) if the stored binding is still at b.ModifyIndex.
type BindingWrite struct {
	StoredBinding
	Delete bool
}

// maxTxnBytes keeps a transaction under Consul's txn_max_req_len (512 KiB
// by default) with room for the request's own encoding.
const maxTxnBytes = 384 << 10

// WriteBindings applies the changes of a resolver pass in as few Consul
// transactions as its limits allow (usually one) and returns each write's
// new modify index (0 for a delete), in order. Every change is a
// check-and-set: a binding changed since it was read fails its
// transaction with ErrConflict, and nothing of that transaction is applied.
func (c *Client) WriteBindings(ctx context.Context, writes []BindingWrite) ([]uint64, error) {
	indexes := make([]uint64, 0, len(writes))
	for start := 0; start < len(writes); {
		end, size := start, 0
		for end < len(writes) && end-start < maxTxnOps && (end == start || size+len(writes[end].Value) <= maxTxnBytes) {
			size += len(writes[end].Value)
			end++
		}
		got, err := c.writeBindingsTxn(ctx, writes[start:end])
		if err != nil {
			return indexes, err
		}
		indexes = append(indexes, got...)
		start = end
	}
	return indexes, nil
}

func (c *Client) writeBindingsTxn(ctx context.Context, writes []BindingWrite) ([]uint64, error) {
	ops := make(api.TxnOps, len(writes))
	for i, w := range writes {
		key := c.keys.binding(w.Federation, w.Service, w.Region)
		op := &api.KVTxnOp{Verb: api.KVCAS, Key: key, Value: w.Value, Index: w.ModifyIndex}
		if w.Delete {
			op = &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: key, Index: w.ModifyIndex}
		}
		ops[i] = &api.TxnOp{KV: op}
	}
	wo, cancel := c.write(ctx)
	defer cancel()
	ok, resp, _, err := c.consul.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(wo.Context()))
	if err != nil {
		return nil, c.fail(ctx, err, "write %d bindings", len(writes))
	}
	if !ok {
		var what []string
		for _, e := range resp.Errors {
			what = append(what, e.What)
		}
		return nil, fmt.Errorf("%w: bindings changed since they were read: %s", ErrConflict, strings.Join(what, "; "))
	}
	byKey := map[string]uint64{}
	for _, r := range resp.Results {
		if r.KV != nil {
			byKey[r.KV.Key] = r.KV.ModifyIndex
		}
	}
	out := make([]uint64, len(writes))
	for i, w := range writes {
		if !w.Delete {
			out[i] = byKey[c.keys.binding(w.Federation, w.Service, w.Region)]
		}
	}
	return out, nil
}
