package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

// Status is a node's last provision, as listeners record it.
type Status struct {
	Node       string    `json:"node"`
	Federation string    `json:"federation,omitempty"`
	Result     string    `json:"result"` // "ok", "failed", "skipped", "halted"
	Message    string    `json:"message,omitempty"`
	Revision   uint64    `json:"revision,omitempty"` // bindings revision applied
	At         time.Time `json:"at"`
	// Details is free-form per-service information (unresolved variables,
	// failed templates) for `patchbay status`.
	Details map[string]string `json:"details,omitempty"`
	// Live is set on a status the node's listener answered itself; a
	// status read from Consul is the last outcome the node recorded.
	Live bool `json:"live,omitempty"`
	// Stale is set by `patchbay status` on a recorded status whose node
	// did not answer over NATS: its listener stopped or is unreachable.
	Stale bool `json:"stale,omitempty"`
	// Queue is the listener's queue, on a live status only.
	Queue *QueueState `json:"queue,omitempty"`
}

// PutStatus records a node's last provision.
func (c *Client) PutStatus(ctx context.Context, s Status) error {
	if err := s.validate(); err != nil {
		return err
	}
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("registry: encode status of %s: %w", s.Node, err)
	}
	w, cancel := c.write(ctx)
	defer cancel()
	if _, err := c.consul.KV().Put(&api.KVPair{Key: c.keys.nodeStatus(s.Node), Value: data}, w); err != nil {
		return c.fail(ctx, err, "write status of %s", s.Node)
	}
	return nil
}

// DeleteStatus removes a node's status record: its listener stopped
// cleanly, or `patchbay status --prune` found it stale. A missing record is
// no error.
func (c *Client) DeleteStatus(ctx context.Context, node string) error {
	if node == "" {
		return fmt.Errorf("%w: status without a node", ErrInvalid)
	}
	w, cancel := c.write(ctx)
	defer cancel()
	if _, err := c.consul.KV().Delete(c.keys.nodeStatus(node), w); err != nil {
		return c.fail(ctx, err, "delete status of %s", node)
	}
	return nil
}

// Statuses reads every node's last provision, sorted by node. Unreadable
// records are returned as skipped.
func (c *Client) Statuses(ctx context.Context) ([]Status, []binding.SkippedKey, error) {
	q, cancel := c.query(ctx)
	defer cancel()
	pairs, _, err := c.consul.KV().List(c.keys.status(), q)
	if err != nil {
		return nil, nil, c.fail(ctx, err, "read %s", c.keys.status())
	}
	var (
		out     []Status
		skipped []binding.SkippedKey
	)
	for _, p := range pairs { // KV lists are sorted by key
		s, err := DecodeStatus(p.Key, strings.TrimPrefix(p.Key, c.keys.status()), p.Value)
		if err != nil {
			skipped = append(skipped, binding.SkippedKey{Key: p.Key, Reason: err.Error()})
			continue
		}
		out = append(out, s)
	}
	return out, skipped, nil
}

// Halt records who stopped a rollout group, why and when.
type Halt struct {
	Node   string    `json:"node"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// RolloutGroup coordinates the nodes of one rollout group: a semaphore of
// slots and a halt flag.
type RolloutGroup struct {
	c          *Client
	fed, group string
}

// Rollout returns the coordination handle of a group.
func (c *Client) Rollout(fed, group string) (*RolloutGroup, error) {
	if !manifest.IsDNSLabel(fed) || !manifest.IsDNSLabel(group) {
		return nil, fmt.Errorf("%w: rollout group %s/%s: both must be DNS labels", ErrInvalid, fed, group)
	}
	return &RolloutGroup{c: c, fed: fed, group: group}, nil
}

func (g *RolloutGroup) haltKey() string { return g.c.keys.rollout(g.fed, g.group) + "halt" }

// Acquire blocks until one of limit slots is free and takes it for node.
// Call release when done; the slot also frees if this process dies, since
// consul/api's semaphore holds it with a session.
func (g *RolloutGroup) Acquire(ctx context.Context, node string, limit int) (release func() error, err error) {
	sem, err := g.c.consul.SemaphoreOpts(&api.SemaphoreOptions{
		Prefix:      g.c.keys.rollout(g.fed, g.group) + "slots",
		Limit:       limit,
		Value:       []byte(node),
		SessionName: "patchbay rollout " + g.fed + "/" + g.group + " " + node,
	})
	if err != nil {
		return nil, fmt.Errorf("registry: rollout semaphore %s/%s: %w", g.fed, g.group, err)
	}
	lost, err := sem.Acquire(ctx.Done())
	if err != nil {
		return nil, g.c.fail(ctx, err, "acquire a rollout slot of %s/%s", g.fed, g.group)
	}
	if lost == nil {
		return nil, fmt.Errorf("registry: rollout slot of %s/%s: %w", g.fed, g.group, ctx.Err())
	}
	return sem.Release, nil
}

// SetHalt stops the group: its other nodes stage but do not apply.
func (g *RolloutGroup) SetHalt(ctx context.Context, h Halt) error {
	data, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("registry: encode halt: %w", err)
	}
	w, cancel := g.c.write(ctx)
	defer cancel()
	if _, err := g.c.consul.KV().Put(&api.KVPair{Key: g.haltKey(), Value: data}, w); err != nil {
		return g.c.fail(ctx, err, "write %s", g.haltKey())
	}
	return nil
}

// Halted returns the halt record, or nil when the group may apply.
func (g *RolloutGroup) Halted(ctx context.Context) (*Halt, error) {
	pair, err := g.c.get(ctx, g.haltKey())
	if err != nil || pair == nil {
		return nil, err
	}
	var h Halt
	if err := json.Unmarshal(pair.Value, &h); err != nil {
		// A halt flag that cannot be read still halts: the safe reading.
		return &Halt{Reason: "unreadable halt record at " + g.haltKey() + "; run patchbay rollout resume"}, nil
	}
	return &h, nil
}

// Resume clears the halt flag; it reports whether the group was halted.
func (g *RolloutGroup) Resume(ctx context.Context) (bool, error) {
	w, cancel := g.c.write(ctx)
	defer cancel()
	pair, err := g.c.get(ctx, g.haltKey())
	if err != nil || pair == nil {
		return false, err
	}
	if _, err := g.c.consul.KV().Delete(g.haltKey(), w); err != nil {
		return false, g.c.fail(ctx, err, "delete %s", g.haltKey())
	}
	return true, nil
}

// Halts lists every halted rollout group of every federation, keyed
// "federation/group", for `patchbay status`. Like Halted, it counts a halt
// record that cannot be read as a halt: the safe reading.
func (c *Client) Halts(ctx context.Context) (map[string]Halt, error) {
	// The rollout(fed, group) subtrees of keys.go, all federations at once:
	// halt flags sit among the semaphores' entries, which are few.
	base := c.keys.rollouts()
	q, cancel := c.query(ctx)
	defer cancel()
	pairs, _, err := c.consul.KV().List(base, q)
	if err != nil {
		return nil, c.fail(ctx, err, "read %s", base)
	}
	out := map[string]Halt{}
	for _, p := range pairs {
		seg, err := parts(p.Key, base, 3) // <fed>/<group>/halt; slots/… have more segments
		if err != nil || seg[2] != "halt" {
			continue
		}
		var h Halt
		if err := json.Unmarshal(p.Value, &h); err != nil {
			h = Halt{Reason: "unreadable halt record at " + p.Key + "; run patchbay rollout resume"}
		}
		out[seg[0]+"/"+seg[1]] = h
	}
	return out, nil
}
