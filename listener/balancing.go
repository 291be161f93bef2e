package listener

import "github.com/patchbay/patchbay/listener/balance"

// Load balancing is listener/balance's; the listener hands it its runs'
// templates and files.

var _ balance.Metrics = (*Metrics)(nil)

// ErrHAProxyAPI: HAProxy's runtime API refused a command or cannot be
// reached (balance.ErrHAProxyAPI).
var ErrHAProxyAPI = balance.ErrHAProxyAPI

// change is f as load balancing sees a changed file.
func (f *rendered) change() balance.Change {
	return balance.Change{Spec: f.spec, Destination: f.file.Destination, Previous: f.previous, Existed: f.existed, Content: f.content, Report: f.report}
}
