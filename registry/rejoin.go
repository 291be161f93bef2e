package registry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// A node cut off from the Consul servers is marked failed (its serfHealth
// check critical), and Consul refuses a session tied to that check until
// gossip finds the node again. Serf retries failed members only every 30 s,
// so after a partition heals a node's instances came back after up to 30 s
// (25.7 s in the chaos suite). Asking the local agent to join the servers
// it knows makes that seconds: the join's state exchange clears the failure.
// It needs agent write on the node (and node read of the servers, to list
// them); without them the node waits for gossip, as before.

// serverRole is the tag value Consul servers carry in the member list.
const serverRole = "consul"

// rejoinIfFailed asks the local agent to join a server when the servers
// hold node failed. It reports whether a join was accepted.
func (c *Client) rejoinIfFailed(ctx context.Context, node string) (bool, error) {
	q, cancel := c.query(ctx)
	defer cancel()
	checks, _, err := c.consul.Health().Node(node, q)
	if err != nil {
		return false, c.fail(ctx, err, "read the health of node %s", node)
	}
	if !serfFailed(checks) {
		return false, nil
	}
	var members []*api.AgentMember
	if _, err := c.consul.Raw().Query("/v1/agent/members", &members, q); err != nil {
		return false, c.fail(ctx, err, "list the agent's members")
	}
	var last error
	for _, addr := range serverAddrs(members) {
		w, cancel := c.write(ctx)
		_, err := c.consul.Raw().Write("/v1/agent/join/"+addr, nil, nil, w)
		cancel()
		if err == nil {
			return true, nil
		}
		last = c.fail(ctx, err, "ask the agent to join %s", addr)
	}
	return false, last
}

// serfFailed reports whether the node's serfHealth check is critical.
func serfFailed(checks api.HealthChecks) bool {
	for _, ch := range checks {
		if ch.CheckID == "serfHealth" {
			return ch.Status == api.HealthCritical
		}
	}
	return false
}

// serverAddrs are the gossip addresses of the servers among members.
func serverAddrs(members []*api.AgentMember) []string {
	var out []string
	for _, m := range members {
		if m.Tags["role"] == serverRole && m.Addr != "" {
			out = append(out, net.JoinHostPort(m.Addr, strconv.Itoa(int(m.Port))))
		}
	}
	return out
}

// rejoinEvery bounds how often an owner asks for a join.
const rejoinEvery = 5 * time.Second

// rejoiner is an owner's use of rejoinIfFailed: only after Consul answered
// a registration step with an error (so the servers are reachable again),
// at most every rejoinEvery, and a refusal logged once.
type rejoiner struct {
	o      *Owner
	last   time.Time
	warned bool
}

func (r *rejoiner) after(ctx context.Context, err error) {
	var answer *consulAnswer
	if !errors.As(err, &answer) || answer.code != http.StatusInternalServerError || time.Since(r.last) < rejoinEvery {
		return
	}
	r.last = time.Now()
	joined, err := r.o.c.rejoinIfFailed(ctx, r.o.spec.Node)
	switch {
	case joined:
		r.o.log.Info("the servers held this node failed after losing it; asked the local Consul agent to join them again", "node", r.o.spec.Node)
	case err != nil && !r.warned:
		r.warned = true
		r.o.log.Warn("could not ask the local Consul agent to rejoin the servers; the instance comes back when gossip finds the node (up to 30 s)", "err", err)
	}
}
