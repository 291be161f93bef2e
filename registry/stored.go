package registry

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
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
func decodeInstance(key string, seg []string, value []byte) (binding.Instance, error) {
	var in binding.Instance
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

// statusResults are the results a listener records (listener.Result*).
var statusResults = []string{"ok", "failed", "skipped", "halted"}

// DecodeStatus reads a node's status record, stored in Consul at key for
// node, or answered over NATS (key and node ""), with the rules PutStatus
// writes it by: whoever can write status/ or publish on NATS must not make
// `patchbay status` or the console show another node's outcome, or bytes
// that are not text.
func DecodeStatus(key, node string, value []byte) (Status, error) {
	var s Status
	where := cmp.Or(ShownKey(key), "status answer")
	if off := manifest.InvalidUTF8(string(value)); off >= 0 {
		return s, fmt.Errorf("%s: the byte at offset %d is not UTF-8", where, off)
	}
	if err := json.Unmarshal(value, &s); err != nil {
		return s, fmt.Errorf("%s: malformed status JSON: %w", where, err)
	}
	if err := s.validate(); err != nil {
		return s, fmt.Errorf("%s: %w", where, err)
	}
	if key != "" && s.Node != node {
		return s, fmt.Errorf("%s: status of node %q stored under the key of %q", key, s.Node, node)
	}
	return s, nil
}

func (s Status) validate() error {
	switch {
	case s.Node == "" || strings.ContainsAny(s.Node, "/ ") || strings.IndexFunc(s.Node, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: status node %q is not a node name", ErrInvalid, s.Node)
	case s.Federation != "" && !manifest.IsDNSLabel(s.Federation):
		return fmt.Errorf("%w: status federation %q is not a DNS label", ErrInvalid, s.Federation)
	case !slices.Contains(statusResults, s.Result):
		return fmt.Errorf("%w: status result %q is not one of %s", ErrInvalid, s.Result, strings.Join(statusResults, ", "))
	}
	return nil
}
