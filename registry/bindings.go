package registry

import (
	"context"
	"fmt"

	"github.com/hashicorp/consul/api"
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
}

// Bindings reads every stored binding.
func (c *Client) Bindings(ctx context.Context) ([]StoredBinding, []SkippedKey, error) {
	q, cancel := c.query(ctx)
	defer cancel()
	pairs, _, err := c.consul.KV().List(c.keys.bindings(), q)
	if err != nil {
		return nil, nil, c.fail(ctx, err, "read %s", c.keys.bindings())
	}
	var (
		out     []StoredBinding
		skipped []SkippedKey
	)
	for _, p := range pairs {
		seg, err := parts(p.Key, c.keys.bindings(), 3)
		if err != nil {
			skipped = append(skipped, SkippedKey{Key: p.Key, Reason: err.Error()})
			continue
		}
		out = append(out, StoredBinding{Federation: seg[0], Service: seg[1], Region: regionFromKey(seg[2]), Value: p.Value, ModifyIndex: p.ModifyIndex})
	}
	return out, skipped, nil
}

// Binding reads one stored binding; nil when there is none.
func (c *Client) Binding(ctx context.Context, fed, service, region string) (*StoredBinding, error) {
	pair, err := c.get(ctx, c.keys.binding(fed, service, region))
	if err != nil || pair == nil {
		return nil, err
	}
	return &StoredBinding{Federation: fed, Service: service, Region: region, Value: pair.Value, ModifyIndex: pair.ModifyIndex}, nil
}

// PutBinding writes b if the stored one is still at b.ModifyIndex, and
// returns the new modify index. A stale index is ErrConflict: another
// resolver wrote in between, and this one must re-read before writing.
func (c *Client) PutBinding(ctx context.Context, b StoredBinding) (uint64, error) {
	key := c.keys.binding(b.Federation, b.Service, b.Region)
	w, cancel := c.write(ctx)
	defer cancel()
	ok, _, err := c.consul.KV().CAS(&api.KVPair{Key: key, Value: b.Value, ModifyIndex: b.ModifyIndex}, w)
	if err != nil {
		return 0, c.fail(ctx, err, "write %s", key)
	}
	if !ok {
		return 0, fmt.Errorf("%w: %s changed since it was read", ErrConflict, key)
	}
	stored, err := c.get(ctx, key)
	if err != nil {
		return 0, err
	}
	if stored == nil {
		return 0, fmt.Errorf("%w: %s vanished right after it was written", ErrConflict, key)
	}
	return stored.ModifyIndex, nil
}

// DeleteBinding removes a binding if it is still at modifyIndex.
func (c *Client) DeleteBinding(ctx context.Context, b StoredBinding) error {
	key := c.keys.binding(b.Federation, b.Service, b.Region)
	w, cancel := c.write(ctx)
	defer cancel()
	ok, _, err := c.consul.KV().DeleteCAS(&api.KVPair{Key: key, ModifyIndex: b.ModifyIndex}, w)
	if err != nil {
		return c.fail(ctx, err, "delete %s", key)
	}
	if !ok {
		return fmt.Errorf("%w: %s changed since it was read", ErrConflict, key)
	}
	return nil
}

// Leadership is held by at most one process at a time.
type Leadership struct {
	lock *api.Lock
	// Lost closes when leadership is lost (session invalidated, Consul
	// unreachable for too long).
	Lost <-chan struct{}
}

// Release gives leadership up.
func (l *Leadership) Release() error { return l.lock.Unlock() }

// AcquireLeadership blocks until this process leads name (e.g. "resolver")
// or ctx ends; standbys wait here. The lock's session has Consul's
// lock-session TTL, so a leader that dies is replaced within about that.
func (c *Client) AcquireLeadership(ctx context.Context, name, holder string) (*Leadership, error) {
	key := c.keys.leader(name)
	lock, err := c.consul.LockOpts(&api.LockOptions{
		Key: key, Value: []byte(holder), SessionName: "patchbay " + name + " leader " + holder,
		SessionTTL: "10s", MonitorRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("registry: leader lock %s: %w", key, err)
	}
	lost, err := lock.Lock(ctx.Done())
	if err != nil {
		return nil, c.fail(ctx, err, "acquire %s", key)
	}
	if lost == nil {
		return nil, fmt.Errorf("registry: leader lock %s: %w", key, ctx.Err())
	}
	return &Leadership{lock: lock, Lost: lost}, nil
}
