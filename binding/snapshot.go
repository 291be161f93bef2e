package binding

import (
	"fmt"

	"github.com/patchbay/patchbay/manifest"
)

// Instance is one running copy of a service on one node. The registry
// lists an instance while its owner's session lives: presence means live
// and healthy.
type Instance struct {
	ID         string `json:"id"` // "<service>@<node>:<port>", unique in its federation
	Service    string `json:"service"`
	Federation string `json:"federation"`
	Node       string `json:"node"`
	Address    string `json:"address"`
	Port       int    `json:"port"`
	Region     string `json:"region,omitempty"`
	// Index is the instance's number within an indexed service; -1 otherwise.
	Index int `json:"index"`
	// Public copies the manifest's flag at registration, so that readers
	// filtering public routes need not join with manifests.
	Public bool `json:"public"`
	// Provides holds the manifest's provides with this instance's HOST,
	// PORT, NODE, REGION and INDEX filled in.
	Provides map[string]string `json:"provides"`
}

// InstanceID names the instance of service on node at port.
func InstanceID(service, node string, port int) string {
	return fmt.Sprintf("%s@%s:%d", service, node, port)
}

// Datastore is one static provider value.
type Datastore struct {
	Federation string `json:"federation"`
	Key        string `json:"key"`
	Value      string `json:"value"`
	// Refused says why the stored value cannot be used (not UTF-8, say),
	// naming its key; Value is then empty and the key serves nothing.
	Refused string `json:"refused,omitempty"`
}

// Snapshot is everything the resolver needs: the engine's input, which the
// registry reads at one Consul index.
// Every slice is sorted (manifests by federation and id, instances by
// federation, service and id, datastores by federation and key), so equal
// cluster states give equal snapshots.
type Snapshot struct {
	// Index is the Consul KV index the snapshot was read at; a watch
	// started from it returns on the next change.
	Index      uint64              `json:"index"`
	Manifests  []manifest.Manifest `json:"manifests"`
	Instances  []Instance          `json:"instances"`
	Datastores []Datastore         `json:"datastores"`
	// Skipped lists entries under the prefix that could not be read
	// (malformed JSON written by hand, say); they are left out, not fatal.
	Skipped []SkippedKey `json:"skipped,omitempty"`
	// NotLive lists instance keys that no live session of the node they
	// name holds, or whose value changed since it acquired them: written by
	// hand, or by another node's token. They never bind; Explain lists them
	// with the reason.
	NotLive []NotLiveInstance `json:"not_live,omitempty"`
}

// NotLiveInstance is an instance key the registry does not count as live,
// and why.
type NotLiveInstance struct {
	Instance
	Reason string `json:"reason"`
}

// SkippedKey is a KV entry a reader left out, and why.
type SkippedKey struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}
