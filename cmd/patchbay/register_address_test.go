package main

import (
	"strings"
	"testing"
)

// TestRegisterRefusesAddresses: an address that could carry config syntax
// into a load balancer never reaches Consul; register exits 1 with the rule.
func TestRegisterRefusesAddresses(t *testing.T) {
	for _, addr := range []string{"evil;example", "10.0.0.7:80", "web 1", "a{b}"} {
		// No Consul at this address: the refusal must come before any request.
		code, _, stderr := patchbay(t, "register", "--consul-addr=127.0.0.1:1", "web", "--node", "n1", "--address", addr, "--port", "81")
		if code != exitUser || !strings.Contains(stderr, "is not an IP address or a host name") {
			t.Errorf("register --address %q: exit %d, stderr %q", addr, code, stderr)
		}
	}
}
