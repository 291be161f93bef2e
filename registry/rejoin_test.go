package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

func TestSerfFailed(t *testing.T) {
	tests := []struct {
		name   string
		checks api.HealthChecks
		want   bool
	}{
		{"no checks", nil, false},
		{"serf passing", api.HealthChecks{{CheckID: "serfHealth", Status: api.HealthPassing}}, false},
		{"serf critical", api.HealthChecks{{CheckID: "owner", Status: api.HealthPassing}, {CheckID: "serfHealth", Status: api.HealthCritical}}, true},
		{"another check critical", api.HealthChecks{{CheckID: "owner", Status: api.HealthCritical}, {CheckID: "serfHealth", Status: api.HealthPassing}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := serfFailed(tt.checks); got != tt.want {
				t.Errorf("serfFailed = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestServerAddrs(t *testing.T) {
	members := []*api.AgentMember{
		{Name: "srv1", Addr: "10.0.0.1", Port: 8301, Tags: map[string]string{"role": "consul"}},
		{Name: "host1", Addr: "10.0.0.9", Port: 8301, Tags: map[string]string{"role": "node"}},
		{Name: "srv2", Addr: "fd00::2", Port: 8301, Tags: map[string]string{"role": "consul"}},
		{Name: "nameless", Addr: "", Port: 8301, Tags: map[string]string{"role": "consul"}},
	}
	want := []string{"10.0.0.1:8301", "[fd00::2]:8301"}
	if got := serverAddrs(members); !slices.Equal(got, want) {
		t.Errorf("serverAddrs = %v, want %v", got, want)
	}
}

// TestConsulAnswerIsKept: the rejoin is tried only after Consul answered,
// which the wrapped error must still tell after fail and further wrapping.
func TestConsulAnswerIsKept(t *testing.T) {
	c := &Client{addr: "127.0.0.1:8500"}
	ctx := context.Background()
	answered := c.fail(ctx, api.StatusError{Code: 500, Body: "rpc error making call: apply failed: Check 'serfHealth' is in critical state"}, "create session %q", "x")
	unreachable := c.fail(ctx, errors.New("dial tcp 127.0.0.1:8500: connect: connection refused"), "create session %q", "x")
	var a *consulAnswer
	if !errors.As(fmt.Errorf("register: %w", answered), &a) || a.code != 500 {
		t.Errorf("an answer of 500 is lost in %v", answered)
	}
	if errors.As(unreachable, &a) {
		t.Errorf("an unreachable Consul reads as an answer: %v", unreachable)
	}
	if want := `create session "x": consul at 127.0.0.1:8500 answered 500: rpc error making call: apply failed: Check 'serfHealth' is in critical state`; answered.Error() != want {
		t.Errorf("message changed:\n got %s\nwant %s", answered.Error(), want)
	}
}

// TestRejoinIfFailed against real Consul: a node the servers hold failed
// (serfHealth critical, as after a partition) gets a join of the servers
// the agent lists; a healthy node gets none.
func TestRejoinIfFailed(t *testing.T) {
	consul := testcluster.StartConsul(t)
	c := newClient(t, consul)
	ctx := t.Context()
	self, err := c.consul.Agent().NodeName()
	if err != nil {
		t.Fatal(err)
	}
	if joined, err := c.rejoinIfFailed(ctx, self); err != nil || joined {
		t.Fatalf("healthy node %s: joined=%v err=%v, want no join", self, joined, err)
	}
	_, err = c.consul.Catalog().Register(&api.CatalogRegistration{
		Node: "cut-off", Address: "10.9.9.9",
		Check: &api.AgentCheck{Node: "cut-off", CheckID: "serfHealth", Name: "Serf Health Status", Status: api.HealthCritical},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if joined, err := c.rejoinIfFailed(ctx, "cut-off"); err != nil || !joined {
		t.Fatalf("failed node: joined=%v err=%v, want a join of the dev server", joined, err)
	}
}
