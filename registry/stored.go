package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/resolver"
)

// Everything read back from Consul is untrusted input: anyone with write
// access to the KV store can put any bytes under any key. These decoders
// apply the rules that hold when patchbay writes a value (publish,
// datastore set, register), so that a value written past them is refused
// with an error naming its key instead of reaching the resolver or a
// listener.

// decodeManifest reads the manifest stored at key, which names fed and id.
func DecodeManifest(key, fed, id string, value []byte) (*manifest.Manifest, error) {
	m, err := manifest.ParseStored(key, value)
	if err != nil {
		return nil, fmt.Errorf("%w; fix the manifest and republish it (patchbay publish)", oneLine{err})
	}
	if m.Federation != fed || m.ID != id {
		return nil, fmt.Errorf("%s: manifest %s/%s stored under the key of %s/%s; republish the service (patchbay publish)", key, m.Federation, m.ID, fed, id)
	}
	return m, nil
}

// decodeInstance reads the instance record stored at key, which names fed,
// service and the instance's ID, with the rules Register applies.
func decodeInstance(key string, seg []string, value []byte) (resolver.Instance, error) {
	var in resolver.Instance
	if off := manifest.InvalidUTF8(string(value)); off >= 0 {
		return in, fmt.Errorf("%s: the byte at offset %d is not UTF-8", key, off)
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	if err := dec.Decode(&in); err != nil {
		return in, fmt.Errorf("%s: malformed instance JSON: %w", key, err)
	}
	spec := InstanceSpec{Federation: in.Federation, Service: in.Service, Node: in.Node, Address: in.Address, Port: in.Port, Region: in.Region}
	if err := spec.validate(); err != nil {
		return in, fmt.Errorf("%s: %w", key, err)
	}
	switch {
	case in.Federation != seg[0] || in.Service != seg[1] || in.ID != seg[2]:
		return in, fmt.Errorf("%s: instance %s of %s/%s stored under another key", key, in.ID, in.Federation, in.Service)
	case in.ID != spec.ID():
		return in, fmt.Errorf("%s: instance ID %q is not %q (service@node:port)", key, in.ID, spec.ID())
	case in.Region != "" && !manifest.IsDNSLabel(in.Region):
		return in, fmt.Errorf("%s: region %q is not a DNS label", key, in.Region)
	case in.Index < -1 || in.Index > maxIndex:
		return in, fmt.Errorf("%s: index %d is not -1 (not indexed) or 0 to %d", key, in.Index, maxIndex)
	}
	for _, k := range slices.Sorted(maps.Keys(in.Provides)) {
		if !manifest.IsKeyName(k) {
			return in, fmt.Errorf("%s: provided key %q is not an upper-case name", key, k)
		}
	}
	return in, nil
}

// checkDatastoreValue applies the rules of SetDatastore to one value.
func checkDatastoreValue(fed, key, value string) error {
	if err := checkDatastore(fed, key); err != nil {
		return err
	}
	if value == "" {
		return fmt.Errorf("%w: datastore %s: empty value; to remove it use datastore rm", ErrInvalid, key)
	}
	if err := checkUTF8(key, value); err != nil {
		return err
	}
	if len(value) > manifest.MaxSize {
		return fmt.Errorf("%w: datastore %s: value is %d bytes, over the %d-byte limit of one Consul KV value (kv_max_value_size)", ErrInvalid, key, len(value), manifest.MaxSize)
	}
	return nil
}

// oneLine words an error of several lines (Problems) on one, for a
// service's reason and a log line.
type oneLine struct{ err error }

func (o oneLine) Error() string { return strings.ReplaceAll(o.err.Error(), "\n", "; ") }
func (o oneLine) Unwrap() error { return o.err }
