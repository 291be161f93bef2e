package resolver

import (
	"os/exec"
	"strings"
	"testing"
)

// TestEngineLinksNoNetwork keeps the engine pure by construction: its
// imports, direct or not, include nothing that talks to a network. The
// loop that does lives in resolverd.
func TestEngineLinksNoNetwork(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to list the engine's imports: %v", err)
	}
	// The test runs in the package's directory, so "." is package resolver.
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []struct{ path, why string }{
		{"github.com/patchbay/patchbay/registry", "the registry talks to Consul; the engine has input types of its own"},
		{"github.com/hashicorp/consul", "Consul I/O belongs to resolverd and registry"},
		{"github.com/nats-io", "NATS I/O belongs to resolverd"},
		{"net/http", "metrics and healthz are served by resolverd"},
		{"github.com/prometheus", "metrics belong to resolverd"},
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	var offenders []string
	for _, dep := range deps {
		for _, f := range forbidden {
			if dep == f.path || strings.HasPrefix(dep, f.path+"/") {
				offenders = append(offenders, dep+" ("+f.why+")")
			}
		}
	}
	if len(offenders) > 0 {
		t.Fatalf("package resolver links packages that talk to a network:\n  %s", strings.Join(offenders, "\n  "))
	}
}
