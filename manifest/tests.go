package manifest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Test is a command a listener runs after it applied the service's files
// on a node: an HTTP request through the new config, a smoke test. Its
// arguments take the placeholders of health (HOST, PORT, NODE, REGION and
// the environment keys). A test that fails undoes the apply: in a rollout
// group it rolls back and halts the group, elsewhere it restores the
// previous files and the run is retried.
type Test struct {
	// Name identifies the test in reports; "test-N" (1-based) by default.
	Name    string   `yaml:"name" json:"name"`
	Command []string `yaml:"command" json:"command"`
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// DefaultTestTimeout bounds a test that names no timeout.
const DefaultTestTimeout = Duration(30 * time.Second)

// tests checks the tests section and fills in names and timeouts. known
// are the placeholders of provides; tests get health's, without INDEX: a
// test runs for a node's instance, which may not have claimed an index.
func (v *validator) tests(ts []Test, known []string) {
	known = slices.DeleteFunc(slices.Clone(known), func(k string) bool { return k == PlaceholderIndex })
	names := map[string]int{}
	for i := range ts {
		t := &ts[i]
		at := func(field ...string) []string { return append([]string{"tests", strconv.Itoa(i)}, field...) }
		if t.Name == "" {
			t.Name = fmt.Sprintf("test-%d", i+1)
		} else if !IsDNSLabel(t.Name) {
			v.report(at("name"), "tests[%d].name: %q is not a name; use lower-case letters, digits and \"-\", like \"gateway-health\"", i, t.Name)
		}
		if j, dup := names[t.Name]; dup {
			v.report(at("name"), "tests[%d].name: %q is also the name of tests[%d]; give each test its own", i, t.Name, j)
		}
		names[t.Name] = i
		if len(t.Command) == 0 || t.Command[0] == "" {
			v.report(at("command"), "tests[%d].command: missing; give the program and its arguments as a list, e.g. [\"curl\", \"-fsS\", \"http://{HOST}:{PORT}/healthz\"]", i)
		}
		for j, arg := range t.Command {
			v.testArg(arg, known, at("command", strconv.Itoa(j)), fmt.Sprintf("tests[%d].command[%d]", i, j))
		}
		if t.Timeout == 0 {
			t.Timeout = DefaultTestTimeout
		}
	}
}

// testArg checks one argument's placeholders, naming it the way a user
// reads the list.
func (v *validator) testArg(arg string, known, at []string, name string) {
	t, err := ParseTemplate(arg)
	if err != nil {
		v.report(at, "%s: %s", name, strings.TrimPrefix(err.Error(), ErrTemplateSyntax.Error()+": "))
		return
	}
	for _, p := range t.Names() {
		switch {
		case p == PlaceholderIndex:
			v.report(at, "%s: {INDEX} is not known to tests (as to health): a node's instance may not have claimed an index", name)
		case !slices.Contains(known, p):
			v.report(at, "%s: unknown placeholder {%s}; known are HOST, PORT, NODE, REGION and the environment keys%s", name, p, suggest(p, known))
		}
	}
}

// TestVars are the placeholder values of a test on one node: the
// environment keys, overridden by the instance's own (as for health).
func TestVars(m *Manifest, host string, port int, node, region string) map[string]string {
	vars := make(map[string]string, len(m.Environment)+4)
	for k, val := range m.Environment {
		vars[k] = val
	}
	vars[PlaceholderHost], vars[PlaceholderNode], vars[PlaceholderRegion] = host, node, region
	if port > 0 {
		vars[PlaceholderPort] = strconv.Itoa(port)
	}
	return vars
}

// Argv expands the test's placeholders with vars.
func (t Test) Argv(vars map[string]string) ([]string, error) {
	argv := make([]string, len(t.Command))
	for i, arg := range t.Command {
		s, err := Expand(arg, vars)
		if err != nil {
			return nil, fmt.Errorf("manifest: test %s: argument %d: %w", t.Name, i, err)
		}
		argv[i] = s
	}
	return argv, nil
}
