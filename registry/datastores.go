package registry

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/manifest"
)

// ErrNotUTF8 marks a datastore value that is not UTF-8 text. Consul would
// store it, but bindings are JSON, which turns such bytes into U+FFFD: every
// host would get a value nobody wrote.
var ErrNotUTF8 = errkind.New(errkind.Input, "registry: value is not UTF-8")

// SetDatastore stores a static provider value; it reports whether the
// value changed.
func (c *Client) SetDatastore(ctx context.Context, fed, key, value string) (bool, error) {
	if err := checkDatastoreValue(fed, key, value); err != nil {
		return false, err
	}
	return c.putIfChanged(ctx, c.keys.datastore(fed, key), []byte(value))
}

// PublishDatastores stores every value of a datastores file. Keys the file
// does not name are left alone: removing one is an explicit datastore rm.
func (c *Client) PublishDatastores(ctx context.Context, ds *manifest.Datastores) (changed []string, err error) {
	for _, k := range slices.Sorted(maps.Keys(ds.Values)) {
		ok, err := c.SetDatastore(ctx, ds.Federation, k, ds.Values[k])
		if err != nil {
			return changed, err
		}
		if ok {
			changed = append(changed, k)
		}
	}
	return changed, nil
}

// Datastore reads one static provider value.
func (c *Client) Datastore(ctx context.Context, fed, key string) (string, error) {
	if err := checkDatastore(fed, key); err != nil {
		return "", err
	}
	pair, err := c.get(ctx, c.keys.datastore(fed, key))
	if err != nil {
		return "", err
	}
	if pair == nil {
		return "", fmt.Errorf("%w: no datastore %s in federation %s", ErrNotFound, key, fed)
	}
	return string(pair.Value), nil
}

// DeleteDatastore removes one static provider value.
func (c *Client) DeleteDatastore(ctx context.Context, fed, key string) error {
	if _, err := c.Datastore(ctx, fed, key); err != nil {
		return err
	}
	w, cancel := c.write(ctx)
	defer cancel()
	if _, err := c.consul.KV().Delete(c.keys.datastore(fed, key), w); err != nil {
		return c.fail(ctx, err, "delete datastore %s", key)
	}
	return nil
}

func checkDatastore(fed, key string) error {
	if !manifest.IsDNSLabel(fed) {
		return fmt.Errorf("%w: federation %q is not a DNS label", ErrInvalid, fed)
	}
	if !manifest.IsKeyName(key) {
		return fmt.Errorf("%w: datastore key %q is not an upper-case name like PRIMARY_DATABASE_URL", ErrInvalid, key)
	}
	return nil
}

func checkUTF8(key, value string) error {
	off := manifest.InvalidUTF8(value)
	if off < 0 {
		return nil
	}
	// The offending byte is not quoted: the value is often a credential,
	// and this error reaches status and logs when read back from Consul.
	return fmt.Errorf("%w: datastore %s: the byte at offset %d is not UTF-8; give the value as UTF-8 text (encode binary data, e.g. base64): bindings are JSON and would turn it into U+FFFD", ErrNotUTF8, key, off)
}
