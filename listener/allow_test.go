package listener_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/registry"
)

// testAllowAll is the allow of the tests' listener.yaml files: their
// manifests run sh scripts and write anywhere, which no default allows.
const testAllowAll = `allow: {commands: ["**"], sources: ["/**"], destinations: ["/**"]}`

// A manifest command that listener.yaml does not allow is not run: the
// service fails with the reason in the run, the status in Consul, a metric
// and a log line, and its files are not installed. The node's own
// provision command, and the commands allow lists, run.
func TestAllowRefusesManifestCommands(t *testing.T) {
	c := newCluster(t)
	c.startProvResolver(t)
	out := t.TempDir()
	c.provPublish(t, fmt.Sprintf(`id: al-evil
provision: {command: %s}
templates:
  env: {contents: "x=1\n", destination: /etc/al/evil, reload: [systemctl, stop, sshd]}`,
		provSh("touch "+out+"/pwned")))
	c.provPublish(t, fmt.Sprintf(`id: al-fine
provision: {command: %s}
templates:
  env: {contents: "x=1\n", destination: /etc/al/fine, reload: %s}`,
		provSh("touch "+out+"/manifest-ran"), provSh("touch "+out+"/reloaded")))
	c.provWaitBound(t, "", "", "al-evil", "al-fine")
	n := c.startProvNode(t, "al-node", provNodeSpec{
		allow: fmt.Sprintf(`control: "127.0.0.1:0"
allow:
  commands:
    - [sh, -c, "touch %s/re*ed"]
  destinations: [/etc/al/*]`, out),
		services: fmt.Sprintf("  - service: al-evil\n  - service: al-fine\n    provision: {command: %s}\n", provSh("touch "+out+"/node-ran")),
	})
	var r listener.RunReport
	testcluster.Eventually(t, provSettle, "a run meets both services", func() bool {
		var ok bool
		r, ok = n.find(func(r listener.RunReport) bool {
			return len(r.Services) == 2 && r.Services[0].Result != listener.ResultSkipped && r.Services[1].Result != listener.ResultSkipped
		})
		return ok
	})
	evil := provService(r, "al-evil")
	if evil.Result != listener.ResultFailed || !strings.Contains(evil.Reason, `provision command ["sh" "-c" "touch `) ||
		!strings.Contains(evil.Reason, `reload of template env ["systemctl" "stop" "sshd"] is not in allow.commands`) {
		t.Errorf("al-evil: %s: %s, want failed naming both refused commands", evil.Result, evil.Reason)
	}
	if _, err := os.Stat(out + "/pwned"); err == nil {
		t.Error("the refused provision command ran")
	}
	if _, err := os.Stat(n.root + "/etc/al/evil"); err == nil {
		t.Error("the refused service's file was installed")
	}
	// al-fine's manifest provision is replaced by the node's, which always runs.
	if _, err := os.Stat(out + "/node-ran"); err != nil {
		t.Errorf("the node's own provision command did not run: %v", err)
	}
	if fine := provService(r, "al-fine"); fine.Result != listener.ResultOK {
		t.Errorf("al-fine: %s: %s, want it applied", fine.Result, fine.Reason)
	}
	if _, err := os.Stat(out + "/reloaded"); err != nil {
		t.Errorf("the allowed reload did not run: %v", err)
	}
	if !n.logged("manifest command refused", "service=al-evil", "systemctl") {
		t.Error("no log line for the refused command")
	}
	c.provWaitStatus(t, n.name, "failed naming the refusal", func(st registry.Status) bool {
		return st.Result == listener.ResultFailed && strings.Contains(st.Details["al-evil"], "not in allow.commands")
	})
	resp, err := http.Get("http://" + n.l.ControlAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `patchbay_listener_refused_total{kind="command"} `) || strings.Contains(string(body), `patchbay_listener_refused_total{kind="command"} 0`) {
		t.Errorf("metrics do not count the refusals:\n%s", grepLines(string(body), "refused"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
