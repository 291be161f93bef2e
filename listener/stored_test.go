package listener_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/registry"
)

// sdefKey holds the manifest, written straight into Consul past
// publish: its one test has an empty command.
const sdefKey = "patchbay/registry/manifests/default/sdef"

const sdefManifest = `{"id":"sdef","federation":"default",
"templates":{"env":{"contents":"X=1\n","destination":"/etc/sdef/env","perms":"0640","min":1,"timeout":"30s"}},
"tests":[{"name":"empty","command":[],"timeout":"30s"}]}`

// TestStoredManifestIsValidated is the reproduction: a listener
// hosting a manifest with an empty test command written into Consul used to
// panic in templates.Run, at every restart. The manifest is validated as
// publish validates it: that service fails with the reason naming the key,
// in the run and in its status in Consul, nothing of it is installed or
// run, and the node's other service provisions; so again after a restart.
func TestStoredManifestIsValidated(t *testing.T) {
	c := newCluster(t)
	c.startProvResolver(t)
	out := t.TempDir()
	c.provSetDatastore(t, "OK_V", "1")
	c.provPublish(t, fmt.Sprintf(`id: okay
requires: {OK_V: "{OK_V}"}
provision: {command: %s}
templates:
  conf: {contents: %s, destination: /etc/okay/conf}`, provSh("echo p >> "+out+"/provisions"), provQuote(`v={{ binding "OK_V" }}`+"\n")))
	if _, err := c.consul.Client.KV().Put(&api.KVPair{Key: sdefKey, Value: []byte(sdefManifest)}, nil); err != nil {
		t.Fatal(err)
	}
	spec := provNodeSpec{services: "  - service: sdef\n  - service: okay\n"}
	check := func(n *pnode) {
		t.Helper()
		testcluster.Eventually(t, provSettle, "okay provisions and sdef fails", func() bool {
			// No idle queue to wait for: a failed run is retried with
			// backoff, each retry reading the manifest from Consul again.
			r := n.last.Load()
			if r == nil {
				return false
			}
			s, o := provService(*r, "sdef"), provService(*r, "okay")
			return s != nil && s.Result == listener.ResultFailed && o != nil && o.Result == listener.ResultOK && n.file("/etc/okay/conf") == "v=1\n"
		})
		s := provService(*n.last.Load(), "sdef")
		for _, want := range []string{sdefKey, "tests[0].command: missing"} {
			if !strings.Contains(s.Reason, want) {
				t.Errorf("sdef's reason %q does not contain %q", s.Reason, want)
			}
		}
		if len(s.Tests) != 0 || len(s.Templates) != 0 || n.file("/etc/sdef/env") != "" {
			t.Errorf("sdef ran %+v and installed %q; want nothing of it run", s, n.file("/etc/sdef/env"))
		}
		c.provWaitStatus(t, "sd-node", "names sdef's key", func(st registry.Status) bool {
			return st.Result == listener.ResultFailed && strings.Contains(st.Message+fmt.Sprint(st.Details), sdefKey)
		})
	}
	n := c.startProvNode(t, "sd-node", spec)
	check(n)
	n.stop()
	spec.dir = n.dir
	n = c.startProvNode(t, "sd-node", spec)
	check(n)
	if got := lines(provRead(out + "/provisions")); got != 2 {
		t.Errorf("okay provisioned %d times, want 2: once per start", got)
	}
}
