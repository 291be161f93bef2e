package listener_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
)

// Containment: allow.commands is matched on the argv that runs, after the
// placeholders are expanded, and templates and commands see a clean
// environment, never the listener's own.

// A test [cat, "{SECRET_FILE}"] looks like "cat" and one word without a
// "/" before its placeholder is expanded; what runs is cat of a path,
// which `cat *` does not allow. A check's {STAGED} pattern word matches the
// real staged path, and nothing else.
func TestAllowMatchesTheArgvThatRuns(t *testing.T) {
	c := newCluster(t)
	c.startProvResolver(t)
	out := t.TempDir()
	secret := filepath.Join(out, "secret")
	if err := os.WriteFile(secret, []byte("TOP-SECRET-VALUE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.provPublish(t, fmt.Sprintf(`id: am-leak
environment: {SECRET_FILE: %s}
templates:
  env: {contents: "x=1\n", destination: /etc/am/leak}
tests:
  - {name: leak, command: [cat, "{SECRET_FILE}"]}`, provQuote(secret)))
	c.provPublish(t, `id: am-staged
templates:
  env: {contents: "x=1\n", destination: /etc/am/staged, check: [test, -s, "{STAGED}"]}`)
	c.provPublish(t, `id: am-fixed
templates:
  env: {contents: "x=1\n", destination: /etc/am/fixed, check: [test, -s, /etc/passwd]}`)
	c.provWaitBound(t, "", "", "am-leak", "am-staged", "am-fixed")
	n := c.startProvNode(t, "am-node", provNodeSpec{
		allow: `control: "off"
allow:
  commands:
    - cat *
    - [test, -s, "{STAGED}"]
  destinations: [/etc/am/**]`,
		services: "  - service: am-leak\n  - service: am-staged\n  - service: am-fixed\n",
	})
	var r listener.RunReport
	testcluster.Eventually(t, provSettle, "a run meets the three services", func() bool {
		var ok bool
		r, ok = n.find(func(r listener.RunReport) bool {
			return len(r.Services) == 3 && !slices.ContainsFunc(r.Services, func(s listener.ServiceRun) bool { return s.Result == listener.ResultSkipped })
		})
		return ok
	})
	leak := provService(r, "am-leak")
	want := fmt.Sprintf(`test leak ["cat" %q] is not in allow.commands`, secret)
	if leak.Result != listener.ResultFailed || !strings.Contains(leak.Reason, want) {
		t.Errorf("am-leak: %s: %s, want failed with %s", leak.Result, leak.Reason, want)
	}
	for _, tr := range leak.Tests {
		if strings.Contains(tr.Output, "TOP-SECRET") {
			t.Errorf("the refused test ran and printed the secret: %+v", tr)
		}
	}
	if _, err := os.Stat(n.root + "/etc/am/leak"); err == nil {
		t.Error("the refused service's file was installed")
	}
	if s := provService(r, "am-staged"); s.Result != listener.ResultOK {
		t.Errorf("am-staged: %s: %s, want its {STAGED} check allowed and passed", s.Result, s.Reason)
	}
	fixed := provService(r, "am-fixed")
	if fixed.Result != listener.ResultFailed || !strings.Contains(fixed.Reason, `check of template env ["test" "-s" "/etc/passwd"] is not in allow.commands`) {
		t.Errorf("am-fixed: %s: %s, want its check of a path of its own refused", fixed.Result, fixed.Reason)
	}
}

// readmeAllow is the allow: example of the listener.yaml reference,
// docs/listener-yaml.md.
func readmeAllow(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/listener-yaml.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(allow:\n  commands:\n.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("docs/listener-yaml.md has no ```yaml block starting with allow: commands:")
	}
	return string(m[1])
}

// README's example shell pattern is safe: a manifest cannot add a command
// to its shell line, and the varying part reaches the script as an
// argument, never as shell code. A pattern with a glob in a shell's script
// is warned about at load.
func TestReadmeShellPatternIsSafe(t *testing.T) {
	c := newCluster(t)
	c.startProvResolver(t)
	c.provPublish(t, fmt.Sprintf("id: rs-inject\nprovision: {command: %s}", provSh("echo api: ; echo pwned-$((6*7))")))
	c.provPublish(t, fmt.Sprintf("id: rs-arg\nprovision: {command: %s}", provArgv("sh", "-c", `echo "api: $1"`, "sh", "x; echo pwned-$((6*7))")))
	allow := strings.Replace(readmeAllow(t), "  commands:\n", "  commands:\n    - [bash, -c, \"ls *\"]\n", 1)
	c.provWaitBound(t, "", "", "rs-inject", "rs-arg")
	n := c.startProvNode(t, "rs-node", provNodeSpec{
		allow:    "control: \"off\"\n" + allow,
		services: "  - service: rs-inject\n  - service: rs-arg\n",
	})
	var r listener.RunReport
	testcluster.Eventually(t, provSettle, "a run meets both services", func() bool {
		var ok bool
		r, ok = n.find(func(r listener.RunReport) bool {
			return len(r.Services) == 2 && r.Services[0].Result != listener.ResultSkipped && r.Services[1].Result != listener.ResultSkipped
		})
		return ok
	})
	if s := provService(r, "rs-inject"); s.Result != listener.ResultFailed || !strings.Contains(s.Reason, "is not in allow.commands") {
		t.Errorf("rs-inject: %s: %s, want its shell line refused", s.Result, s.Reason)
	}
	if s := provService(r, "rs-arg"); s.Result != listener.ResultOK {
		t.Errorf("rs-arg: %s: %s, want README's shell pattern to allow it", s.Result, s.Reason)
	}
	if n.logged("pwned-42") {
		t.Error("a manifest ran shell code of its own through README's pattern")
	}
	if !n.logged("provision output", "service=rs-arg", "line=api: x; echo pwned-$((6*7))") {
		t.Error("rs-arg's argument did not reach its script as text")
	}
	if !n.logged("allow.commands", `[bash, -c, "ls *"]`, `[bash, -c, 'ls "$1"', bash, "*"]`) {
		t.Error("no warning at load for [bash, -c, \"ls *\"], naming the safer form")
	}
}

// envOf reads a file `env` wrote, one NAME=value a line.
func envOf(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("the command did not write its environment: %v", err)
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// envHas reports whether env holds name, with value when value is not "".
func envHas(env []string, name, value string) bool {
	return slices.ContainsFunc(env, func(kv string) bool {
		k, v, _ := strings.Cut(kv, "=")
		return k == name && (value == "" || v == value)
	})
}

// The listener's own environment (its Consul token) reaches neither a
// template's env function nor any command it runs: they see PATH, the
// service's environment and bindings, and what listener.yaml passes or
// sets. A manifest cannot set what changes how programs load (LD_PRELOAD)
// or where they are found (PATH).
func TestCleanEnvironment(t *testing.T) {
	const token = "listener-consul-token-0123"
	t.Setenv("PATCHBAY_CONSUL_TOKEN", token)
	t.Setenv("CE_PASSED", "passed-value")
	t.Setenv("CE_NOT_PASSED", "not-passed-value")
	c := newCluster(t)
	c.startProvResolver(t)
	c.provSetDatastore(t, "CE_DB", "postgres://ce")
	publish := func(id, out string) {
		c.provPublish(t, fmt.Sprintf(`id: %[1]s
requires: {CE_DB: "{CE_DB}"}
environment: {CE_STATIC: static-value, LD_PRELOAD: /nonexistent/evil.so, PATH: /nonexistent/bin}
provision: {command: %[2]s}
templates:
  conf:
    contents: %[3]s
    destination: /etc/%[1]s/conf
    check: %[4]s
    reload: %[5]s
tests:
  - {name: env, command: %[6]s}`, id, provSh("env > "+out+"/provision"),
			provQuote(`token={{ env "PATCHBAY_CONSUL_TOKEN" }}
must={{ envOrDefault "PATCHBAY_CONSUL_TOKEN" "unset" }}
passed={{ env "CE_PASSED" }}
db={{ env "CE_DB" }}
`),
			provSh("env > "+out+"/check"), provSh("env > "+out+"/reload"), provSh("env > "+out+"/test")))
	}
	run := func(t *testing.T, id, env string) (*pnode, string) {
		out := t.TempDir()
		publish(id, out)
		n := c.startProvNode(t, id+"-node", provNodeSpec{
			allow:    "control: \"off\"\n" + testAllowAll + "\n" + env,
			services: "  - service: " + id + "\n",
		})
		testcluster.Eventually(t, provSettle, id+" applies and provisions", func() bool {
			_, ok := n.find(func(r listener.RunReport) bool {
				s := provService(r, id)
				return s != nil && s.Provision != nil
			})
			return ok
		})
		return n, out
	}

	t.Run("default", func(t *testing.T) {
		n, out := run(t, "ce-default", "")
		conf := n.file("/etc/ce-default/conf")
		for _, want := range []string{"token=\n", "must=unset\n", "passed=\n", "db=postgres://ce\n"} {
			if !strings.Contains(conf, want) {
				t.Errorf("rendered conf:\n%s\nwant %q: env sees the service's bindings, not the listener's environment", conf, want)
			}
		}
		path := os.Getenv("PATH")
		for _, cmd := range []string{"provision", "check", "reload", "test"} {
			env := envOf(t, filepath.Join(out, cmd))
			for _, name := range []string{"PATCHBAY_CONSUL_TOKEN", "CE_PASSED", "CE_NOT_PASSED", "LD_PRELOAD"} {
				if envHas(env, name, "") {
					t.Errorf("%s command sees %s", cmd, name)
				}
			}
			if !envHas(env, "PATH", path) {
				t.Errorf("%s command's PATH is not the listener's %q:\n%s", cmd, path, strings.Join(env, "\n"))
			}
			if cmd == "provision" || cmd == "test" {
				for _, kv := range [][2]string{{"CE_STATIC", "static-value"}, {"CE_DB", "postgres://ce"}, {"PATCHBAY_SERVICE", "ce-default"}} {
					if !envHas(env, kv[0], kv[1]) {
						t.Errorf("%s command lacks %s=%s", cmd, kv[0], kv[1])
					}
				}
			}
		}
	})

	t.Run("listener.yaml passes and sets", func(t *testing.T) {
		n, out := run(t, "ce-pass", "env: {pass: [CE_PASSED], set: {CE_SET: set-value}}")
		if conf := n.file("/etc/ce-pass/conf"); !strings.Contains(conf, "passed=passed-value\n") || !strings.Contains(conf, "token=\n") {
			t.Errorf("rendered conf:\n%s\nwant the passed CE_PASSED and no token", conf)
		}
		for _, cmd := range []string{"provision", "check", "reload", "test"} {
			env := envOf(t, filepath.Join(out, cmd))
			if !envHas(env, "CE_PASSED", "passed-value") || !envHas(env, "CE_SET", "set-value") {
				t.Errorf("%s command lacks CE_PASSED or CE_SET:\n%s", cmd, strings.Join(env, "\n"))
			}
			if envHas(env, "CE_NOT_PASSED", "") || envHas(env, "PATCHBAY_CONSUL_TOKEN", "") {
				t.Errorf("%s command sees a name listener.yaml does not pass", cmd)
			}
		}
	})
}
