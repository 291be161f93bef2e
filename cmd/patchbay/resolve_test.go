package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// An ACL token that may not do what a command needs gives exit 2 and one
// line naming the key and the rule to add, never "not published" or
// "consul unreachable". Consul leaves out of a list what a token may not
// read, without a 403, which is how resolve used to say "not published".
func TestPermissionErrors(t *testing.T) {
	consul, addr := aclConsulWithExamples(t)
	noKeys := "--consul-token=" + testcluster.CreateToken(t, consul, aclRoot, `node_prefix "" { policy = "read" }`)
	readOnly := "--consul-token=" + testcluster.CreateToken(t, consul, aclRoot, `key_prefix "" { policy = "read" }`)
	fresh := writeServices(t, map[string]string{"fresh": "id: fresh\n"})
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		// resolve and explain read the whole registry, else their
		// federation's part: Consul leaves out the keys the token may not
		// read, which they refuse rather than resolve from part of it, and
		// the rule they name is the federation's, never all federations'.
		{"resolve", []string{"resolve", addr, noKeys, "app-www"},
			`registry: permission denied: list patchbay/registry/manifests/default/: the ACL token may not read some of its keys, which Consul leaves out; add the rule key_prefix "patchbay/registry/manifests/default/" { policy = "read" } to its policy`},
		{"explain", []string{"explain", addr, noKeys, "app-www", "API_URL"},
			`add the rule key_prefix "patchbay/registry/manifests/default/" { policy = "read" } to its policy`},
		{"register", []string{"register", addr, noKeys, "api", "--address", "127.0.0.1", "--port", "8080"},
			`lacks key:read on "patchbay/registry/manifests/default/api"; add the rule key_prefix "patchbay/registry/manifests/default/" { policy = "read" }`},
		{"publish", []string{"publish", addr, readOnly, fresh},
			`write patchbay/registry/manifests/default/fresh: the ACL token (AccessorID '`},
		{"datastore set", []string{"datastore", "set", addr, readOnly, "CACHE_URL", "redis://cache"},
			`add the rule key_prefix "patchbay/registry/datastores/default/" { policy = "write" } to its policy`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := patchbay(t, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.stderr) || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("exit %d (want 2)\nstderr:\n%s", code, stderr)
			}
		})
	}
}

// A resolver whose token may lead but not read the registry exits 2 naming
// the rule, rather than resolving from the part it sees or retrying
// silently.
func TestResolverPermissionDenied(t *testing.T) {
	consul, addr := aclConsulWithExamples(t)
	leadOnly := "--consul-token=" + testcluster.CreateToken(t, consul, aclRoot, `
service_prefix "" { policy = "write" }
session_prefix "" { policy = "write" }
node_prefix "" { policy = "read" }
key_prefix "patchbay/locks/" { policy = "write" }
key_prefix "patchbay/bindings/" { policy = "write" }`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"resolver", addr, leadOnly, "--nats-url", "nats://127.0.0.1:1"}, &stdout, &stderr)
	if ctx.Err() != nil {
		t.Fatalf("the resolver still ran after 30 s:\n%s", stderr.String())
	}
	if code != 2 || !strings.Contains(stderr.String(), `add the rule key_prefix "patchbay/registry/" { policy = "read" }`) {
		t.Fatalf("exit %d (want 2)\nstderr:\n%s", code, stderr.String())
	}
}

// aclRoot is the management token of aclConsulWithExamples's agent.
const aclRoot = "11111111-2222-3333-4444-555555555555"

// aclConsulWithExamples starts a default-deny Consul with the examples
// published, and returns it with its --consul-addr flag.
func aclConsulWithExamples(t *testing.T) (*testcluster.Consul, string) {
	t.Helper()
	consul := testcluster.StartConsul(t, testcluster.WithACLs(aclRoot))
	addr := "--consul-addr=" + consul.Addr
	if code, _, stderr := patchbay(t, "publish", addr, "--consul-token="+aclRoot, "../../examples/services"); code != 0 {
		t.Fatalf("publish: exit %d\n%s", code, stderr)
	}
	return consul, addr
}
