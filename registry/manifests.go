package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/manifest"
)

// ErrInvalid marks arguments the registry refuses before touching Consul.
var ErrInvalid = errkind.New(errkind.Input, "registry: invalid argument")

// Publish stores a normalized manifest. Publishing identical content
// changes nothing (not even Consul's modify index); a concurrent publish of
// the same service makes one of the two fail with ErrConflict.
func (c *Client) Publish(ctx context.Context, m *manifest.Manifest) (changed bool, err error) {
	data, err := json.Marshal(m)
	if err != nil {
		return false, fmt.Errorf("registry: encode manifest %s: %w", m.ID, err)
	}
	if len(data) > manifest.MaxSize {
		return false, fmt.Errorf("%w: manifest %s is %d bytes as JSON, over the %d-byte limit of one Consul KV value (kv_max_value_size)", ErrInvalid, m.ID, len(data), manifest.MaxSize)
	}
	return c.putIfChanged(ctx, c.keys.manifest(m.Federation, m.ID), data)
}

// Manifest reads the published manifest of service in fed.
func (c *Client) Manifest(ctx context.Context, fed, service string) (*manifest.Manifest, error) {
	key := c.keys.manifest(fed, service)
	pair, err := c.get(ctx, key)
	if err != nil {
		return nil, err
	}
	if pair == nil {
		return nil, fmt.Errorf("%w: service %s is not published in federation %s; run patchbay publish", ErrNotFound, service, fed)
	}
	m, err := DecodeManifest(key, fed, service, pair.Value)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return m, nil
}

// Unpublish deletes the manifest of service in fed. Its live instances keep
// running; the resolver stops binding to them.
func (c *Client) Unpublish(ctx context.Context, fed, service string) error {
	key := c.keys.manifest(fed, service)
	pair, err := c.get(ctx, key)
	if err != nil {
		return err
	}
	if pair == nil {
		return fmt.Errorf("%w: service %s is not published in federation %s", ErrNotFound, service, fed)
	}
	w, cancel := c.write(ctx)
	defer cancel()
	ok, _, err := c.consul.KV().DeleteCAS(&api.KVPair{Key: key, ModifyIndex: pair.ModifyIndex}, w)
	if err != nil {
		return c.fail(ctx, err, "delete %s", key)
	}
	if !ok {
		return fmt.Errorf("%w: %s changed while unpublishing; look at it again and retry", ErrConflict, key)
	}
	return nil
}

func (c *Client) get(ctx context.Context, key string) (*api.KVPair, error) {
	q, cancel := c.query(ctx)
	defer cancel()
	pair, _, err := c.consul.KV().Get(key, q)
	if err != nil {
		return nil, c.fail(ctx, err, "read %s", key)
	}
	return pair, nil
}

// putIfChanged writes data at key with check-and-set against what it read,
// and writes nothing when the value is already data.
func (c *Client) putIfChanged(ctx context.Context, key string, data []byte) (bool, error) {
	cur, err := c.get(ctx, key)
	if err != nil {
		return false, err
	}
	var index uint64 // 0: the key must not exist yet
	if cur != nil {
		if bytes.Equal(cur.Value, data) {
			return false, nil
		}
		index = cur.ModifyIndex
	}
	w, cancel := c.write(ctx)
	defer cancel()
	ok, _, err := c.consul.KV().CAS(&api.KVPair{Key: key, Value: data, ModifyIndex: index}, w)
	if err != nil {
		return false, c.fail(ctx, err, "write %s", key)
	}
	if !ok {
		return false, fmt.Errorf("%w: %s was changed by someone else while this write was under way; check it and retry", ErrConflict, key)
	}
	return true, nil
}
