package registry

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

// Snapshot reads manifests, live instances and datastores in one
// consistent request, at one Consul index. Entries that cannot be read are
// listed in Skipped and logged, never fatal: one bad key written by hand
// must not stop the resolver.
func (c *Client) Snapshot(ctx context.Context) (*binding.Snapshot, error) {
	q, cancel := c.query(ctx)
	defer cancel()
	pairs, meta, err := c.consul.KV().List(c.keys.inputs(), q)
	if err != nil {
		return nil, c.fail(ctx, err, "read %s", c.keys.inputs())
	}
	if err := c.unlisted(meta, c.keys.inputs()); err != nil {
		return nil, err // never resolve from a registry the token only partly sees
	}
	return c.snapshotOf(ctx, pairs, meta.LastIndex)
}

// FederationSnapshot is Snapshot of one federation's inputs alone: what a
// token scoped to that federation may read (docs/security.md's policy for people and
// CI), for commands about one of its services. Its manifests, instances and
// datastores are three consistent reads, each refused, naming the rule to
// add, if Consul left keys out for the token (a transaction would leave
// them out without a word).
func (c *Client) FederationSnapshot(ctx context.Context, fed string) (*binding.Snapshot, error) {
	if !manifest.IsDNSLabel(fed) {
		return nil, fmt.Errorf("%w: federation %q is not a DNS label", ErrInvalid, fed)
	}
	var (
		pairs api.KVPairs
		index uint64
	)
	for _, base := range []string{c.keys.manifests(), c.keys.instances(), c.keys.datastores()} {
		prefix := base + fed + "/"
		q, cancel := c.query(ctx)
		read, meta, err := c.consul.KV().List(prefix, q)
		cancel()
		if err != nil {
			return nil, c.fail(ctx, err, "read %s", prefix)
		}
		if err := c.unlisted(meta, prefix); err != nil {
			return nil, err
		}
		pairs, index = append(pairs, read...), max(index, meta.LastIndex)
	}
	return c.snapshotOf(ctx, pairs, index)
}

// snapshotOf builds a snapshot from the registry keys read at index.
func (c *Client) snapshotOf(ctx context.Context, pairs api.KVPairs, index uint64) (*binding.Snapshot, error) {
	snap := &binding.Snapshot{Index: index}
	live, err := c.liveness(ctx, pairs)
	if err != nil {
		return nil, err
	}
	for _, p := range pairs {
		if err := c.addToSnapshot(snap, p, live); err != nil {
			snap.Skipped = append(snap.Skipped, binding.SkippedKey{Key: p.Key, Reason: err.Error()})
			c.log.Warn("skipping unreadable registry entry", "key", p.Key, "reason", err)
		}
	}
	slices.SortFunc(snap.Manifests, func(a, b manifest.Manifest) int {
		return cmp.Or(cmp.Compare(a.Federation, b.Federation), cmp.Compare(a.ID, b.ID))
	})
	slices.SortFunc(snap.Instances, func(a, b binding.Instance) int {
		return cmp.Or(cmp.Compare(a.Federation, b.Federation), cmp.Compare(a.Service, b.Service), cmp.Compare(a.ID, b.ID))
	})
	slices.SortFunc(snap.NotLive, func(a, b binding.NotLiveInstance) int {
		return cmp.Or(cmp.Compare(a.Federation, b.Federation), cmp.Compare(a.Service, b.Service), cmp.Compare(a.ID, b.ID))
	})
	slices.SortFunc(snap.Datastores, func(a, b binding.Datastore) int {
		return cmp.Or(cmp.Compare(a.Federation, b.Federation), cmp.Compare(a.Key, b.Key))
	})
	return snap, nil
}

func (c *Client) addToSnapshot(snap *binding.Snapshot, p *api.KVPair, live liveness) error {
	k := c.keys
	switch {
	case strings.HasPrefix(p.Key, k.manifests()):
		seg, err := parts(p.Key, k.manifests(), 2)
		if err != nil {
			return err
		}
		m, err := DecodeManifest(p.Key, seg[0], seg[1], p.Value)
		if err != nil {
			return err
		}
		snap.Manifests = append(snap.Manifests, *m)
	case strings.HasPrefix(p.Key, k.instances()):
		seg, err := parts(p.Key, k.instances(), 3)
		if err != nil {
			return err
		}
		in, err := decodeInstance(p.Key, seg, p.Value)
		if err != nil {
			return err
		}
		if why := live.why(p, in); why != "" {
			c.log.Warn("instance key not live: not bound", "key", p.Key, "reason", why)
			snap.NotLive = append(snap.NotLive, binding.NotLiveInstance{Instance: in, Reason: why})
			return nil
		}
		snap.Instances = append(snap.Instances, in)
	case strings.HasPrefix(p.Key, k.datastores()):
		seg, err := parts(p.Key, k.datastores(), 2)
		if err != nil {
			return err
		}
		d := binding.Datastore{Federation: seg[0], Key: seg[1], Value: string(p.Value)}
		if err := checkDatastoreValue(d.Federation, d.Key, d.Value); err != nil {
			// Kept as refused rather than left out, so that what needs the
			// key gives this reason, naming the key, instead of "no datastore".
			err = fmt.Errorf("%s: %w", p.Key, err)
			d.Value, d.Refused = "", err.Error()
			snap.Datastores = append(snap.Datastores, d)
			return err
		}
		snap.Datastores = append(snap.Datastores, d)
	default:
		return fmt.Errorf("not part of patchbay's layout")
	}
	return nil
}

// liveness tells which instance keys are live: held by a live session of
// the Consul node the instance names, with the value that session wrote. A node's token may write any key of
// its federation's instances, but Consul lets it create sessions on its own
// node only (ACL rule session "<node>"), so the session's node is what
// cannot be forged.
type liveness struct {
	nodes  map[string]string // live session ID → its Consul node
	shared map[string]bool   // Consul nodes whose sessions may hold any node's instances
}

// liveness lists the live sessions, once per read whatever the number of
// instances, after the keys were read: a session that ended in between
// took its keys with it, so nothing live is missed.
func (c *Client) liveness(ctx context.Context, pairs api.KVPairs) (liveness, error) {
	l := liveness{nodes: map[string]string{}, shared: c.sharedAgents}
	if !slices.ContainsFunc(pairs, func(p *api.KVPair) bool { return strings.HasPrefix(p.Key, c.keys.instances()) }) {
		return l, nil
	}
	q, cancel := c.query(ctx)
	defer cancel()
	sessions, meta, err := c.consul.Session().List(q)
	if err != nil {
		return l, c.fail(ctx, err, "list sessions")
	}
	if meta.ResultsFilteredByACLs {
		// Every instance of a node whose sessions are hidden would look dead.
		return l, fmt.Errorf("%w: list sessions: the ACL token may not read some nodes' sessions, which Consul leaves out, so their instances cannot be told live; add the rule session_prefix \"\" { policy = \"read\" } to its policy", ErrPermissionDenied)
	}
	for _, s := range sessions {
		l.nodes[s.ID] = s.Node
	}
	return l, nil
}

// why says why the instance in key p is not live; "" if it is.
func (l liveness) why(p *api.KVPair, in binding.Instance) string {
	node, ok := l.nodes[p.Session]
	switch {
	case p.Session == "":
		return "its key holds no session"
	case !ok:
		return fmt.Sprintf("its session %s has ended", p.Session)
	case node != in.Node && !l.shared[node]:
		return fmt.Sprintf("held by a session of node %s, not %s", node, in.Node)
	case p.ModifyIndex != p.CreateIndex:
		// An owner creates its key by acquiring it and never writes it
		// again; a plain write by any token of the federation keeps the
		// session but changes the value.
		return "its value was rewritten after its session acquired it"
	}
	return ""
}

// DefaultWatchWait is how long one blocking query waits before Consul
// answers with no change.
const DefaultWatchWait = 5 * time.Minute

// Watch blocks until something under the registry's inputs changes after
// index, and returns the new index. It returns early, with index unchanged,
// when Consul's wait time passes with no change. An index of 0 returns at
// once.
func (c *Client) Watch(ctx context.Context, index uint64) (uint64, error) {
	return c.watch(ctx, c.keys.inputs(), index)
}

// WatchBindings is Watch for the stored bindings.
func (c *Client) WatchBindings(ctx context.Context, index uint64) (uint64, error) {
	return c.watch(ctx, c.keys.bindings(), index)
}

// WatchStatuses is Watch for the nodes' recorded statuses (Statuses).
func (c *Client) WatchStatuses(ctx context.Context, index uint64) (uint64, error) {
	return c.watch(ctx, c.keys.status(), index)
}

// WatchRollouts is Watch for the rollout groups of every federation: their
// halts (Halts) and slots.
func (c *Client) WatchRollouts(ctx context.Context, index uint64) (uint64, error) {
	return c.watch(ctx, c.keys.rollouts(), index)
}

// watch is one blocking query on prefix. It lists keys only up to the next
// "/", so Consul answers with a few folder names instead of every key, while
// the index it waits on still covers every key below prefix.
func (c *Client) watch(ctx context.Context, prefix string, index uint64) (uint64, error) {
	q := (&api.QueryOptions{WaitIndex: index, WaitTime: DefaultWatchWait}).WithContext(ctx)
	_, meta, err := c.consul.KV().Keys(prefix, "/", q)
	if err != nil {
		return index, c.fail(ctx, err, "watch %s", prefix)
	}
	if meta.LastIndex < index {
		// Consul's index went backwards (a snapshot restore, say): start over,
		// as its documentation on blocking queries says to.
		return 0, nil
	}
	return meta.LastIndex, nil
}
