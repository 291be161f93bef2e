package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/patchbay/patchbay"

// room is a package, or a tree of packages, and its layer. The layers run
// along the data path: manifests are resolved by the engine into
// bindings, which the registry stores in Consul, events announce on NATS,
// and the listener turns into files; front ends and harnesses sit on top.
type room struct {
	path  string // relative to the module; a room holds its subpackages
	layer int
	what  string
}

// rooms is the import rule, lowest layer first. Add a new package here
// (and to docs/architecture.md) at the layer of what it may import.
var rooms = []room{
	{"internal/errkind", 0, "leaf library"},
	{"internal/suggest", 0, "leaf library"},
	{"internal/graph", 0, "leaf library"},
	{"internal/redact", 0, "leaf library"},
	{"internal/debounce", 0, "leaf library"},
	{"internal/alive", 0, "leaf library"},
	{"internal/archtest", 0, "this test"},
	{"manifest", 1, "the domain model"},
	{"binding", 2, "the contract"},
	{"resolver", 3, "the pure engine"},
	{"templates", 3, "files: rendering and installing"},
	{"model", 3, "what a run decides"},
	{"registry", 4, "Consul"},
	{"internal/events", 5, "NATS"},
	{"resolverd", 6, "the resolver daemon"},
	{"listener", 6, "the host daemon"},
	{"internal/tracking", 6, "change tracking"},
	{"listener/command", 6, "the listener's command execution"},
	{"listener/balance", 6, "the listener's load balancing"},
	{"listener/install", 6, "the listener's install and drift"},
	{"plan", 7, "front end"},
	{"console", 7, "front end"},
	{"internal/harness", 8, "harnesses"},
	{"cmd", 9, "the binary"},
}

// roomOf is the room of import path pkg, by the longest matching path.
func roomOf(pkg string) (room, bool) {
	rel, ok := strings.CutPrefix(pkg, module+"/")
	if !ok {
		return room{}, false
	}
	var best room
	found := false
	for _, r := range rooms {
		if (rel == r.path || strings.HasPrefix(rel, r.path+"/")) && len(r.path) > len(best.path) {
			best, found = r, true
		}
	}
	return best, found
}

type listed struct {
	ImportPath string
	Imports    []string
}

// packages lists every package of the module with its imports, tests'
// imports left out: a test may use a harness from above its own room.
func packages(t *testing.T) []listed {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to list the module's imports: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-json=ImportPath,Imports", module+"/...").Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("go list: %v\n%s", err, exit.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listed
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < len(rooms) {
		t.Fatalf("go list listed %d packages, fewer than the %d rooms", len(pkgs), len(rooms))
	}
	return pkgs
}

// violations applies the rule to pkgs: every package is in a room, and
// imports only rooms of lower layers, or its own room.
func violations(pkgs []listed) []string {
	var out []string
	for _, p := range pkgs {
		from, ok := roomOf(p.ImportPath)
		if !ok {
			out = append(out, fmt.Sprintf("%s is in no room: add it to rooms in internal/archtest and to docs/architecture.md", p.ImportPath))
			continue
		}
		for _, imp := range p.Imports {
			to, ok := roomOf(imp)
			if !ok || to.path == from.path || to.layer < from.layer || nested(to, from) {
				continue // outside the module, its own room, downward, or a capability of its own
			}
			out = append(out, fmt.Sprintf("%s (%s, layer %d) imports %s (%s, layer %d): a room imports only the layers below it",
				strings.TrimPrefix(p.ImportPath, module+"/"), from.what, from.layer,
				strings.TrimPrefix(imp, module+"/"), to.what, to.layer))
		}
	}
	slices.Sort(out)
	return out
}

// nested reports whether inner is a capability of outer: a room of the
// same layer under outer's path (listener/command of listener). A room
// uses its capabilities; they never import it (Go refuses the cycle), nor
// each other, since neither is nested in the other.
func nested(inner, outer room) bool {
	return inner.layer == outer.layer && strings.HasPrefix(inner.path, outer.path+"/")
}

// The import graph runs one way along the data path: no package imports
// one of its own layer (outside its room) or above it.
func TestImportsRunOneWay(t *testing.T) {
	if v := violations(packages(t)); len(v) > 0 {
		t.Fatalf("the import rule is broken:\n  %s", strings.Join(v, "\n  "))
	}
}

// The rule catches what it is for: a daemon under the engine's room that
// imports the registry (resolver/daemon did), an engine importing a
// sibling, and a package in no room.
func TestViolationsAreCaught(t *testing.T) {
	tests := []struct {
		name string
		pkg  listed
		want string
	}{
		{"a daemon inside the engine's room", listed{module + "/resolver/daemon", []string{module + "/registry", module + "/resolver"}}, "resolver/daemon (the pure engine, layer 3) imports registry"},
		{"siblings of one layer", listed{module + "/resolver", []string{module + "/templates"}}, "imports templates (files: rendering and installing, layer 3)"},
		{"upward from the contract", listed{module + "/binding", []string{module + "/internal/events"}}, "binding (the contract, layer 2) imports internal/events"},
		{"a capability importing its room", listed{module + "/listener/command", []string{module + "/listener"}}, "listener/command (the listener's command execution, layer 6) imports listener (the host daemon, layer 6)"},
		{"a room using its capability is fine", listed{module + "/listener", []string{module + "/listener/command", module + "/templates"}}, ""},
		{"a package in no room", listed{module + "/newpkg", nil}, "newpkg is in no room"},
		{"downward and within a room is fine", listed{module + "/internal/harness/bench/cmd/bench", []string{module + "/internal/harness/bench", module + "/listener", "fmt"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(violations([]listed{tt.pkg}), "\n")
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Fatalf("violations = %q, want one containing %q", got, tt.want)
			}
		})
	}
}

// The contract and the engine stay pure by construction: nothing they
// link, directly or not, talks to a network.
func TestContractAndEngineLinkNoNetwork(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed: %v", err)
	}
	forbidden := []string{module + "/registry", "github.com/hashicorp/consul", "github.com/nats-io", "net/http", "github.com/prometheus"}
	for _, pkg := range []string{"manifest", "binding", "resolver"} {
		out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}", module+"/"+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) == 0 {
			t.Fatalf("go list -deps %s listed nothing", pkg)
		}
		for _, dep := range deps {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s links %s, which talks to a network", pkg, dep)
				}
			}
		}
	}
}
