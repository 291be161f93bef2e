package listener

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/registry"
)

// consumerView digests a binding as a service's files and provision
// command see it: the providers of a via-local var are the local load
// balancer's business, so their churn is no change to the consumer, and
// its provision command does not run for it.
func consumerView(b *binding.Binding) string {
	if b == nil {
		return ""
	}
	c := *b
	c.Revision = 0
	c.Vars = maps.Clone(b.Vars)
	for name, v := range c.Vars {
		if v.Local != nil {
			v.Providers = nil
			c.Vars[name] = v
		}
	}
	data, err := json.Marshal(c)
	if err != nil { // strings, numbers and maps: cannot fail
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// inputsChanged reports whether a service's inputs differ from those it
// was last provisioned with in a way the service can see.
func (l *Listener) inputsChanged(service string, last seenInputs, h registry.HostedService, view func() string) bool {
	cur := inputsOf(h)
	switch {
	case last == cur:
		return false
	case last.manifestIndex != cur.manifestIndex || last.region != cur.region:
		return true
	}
	seen, ok := l.provisionedView[service]
	return !ok || seen == "" || seen != view()
}
