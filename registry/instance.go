package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

// Owner defaults. A dead owner's instance vanishes about OwnerTTL after its
// last heartbeat: the owner check goes critical and Consul invalidates the
// session at once, unlike a session TTL, which Consul stretches to 2× with a
// 10 s minimum.
//
// The lock delay is as good as none. A dead owner has been silent for the
// whole owner TTL already, and patchbay cannot fence an owner that is alive
// but cut off (its service keeps running), so a delay would only slow down a
// unique service's takeover: consul/api's Lock waits 5 s after an acquire
// the delay refuses.
const (
	DefaultOwnerTTL   = 3 * time.Second
	DefaultLockDelay  = 0
	DefaultMaxBackoff = 2 * time.Second // a lost instance is back within seconds of Consul accepting it again
	// maxIndex bounds the search for a free {INDEX}.
	maxIndex = 10000
)

// InstanceSpec names the instance an Owner registers.
type InstanceSpec struct {
	Federation string
	Service    string
	Node       string
	Address    string
	Port       int
	Region     string
}

// ID is the instance's ID.
func (s InstanceSpec) ID() string { return binding.InstanceID(s.Service, s.Node, s.Port) }

func (s InstanceSpec) validate() error {
	switch {
	case !manifest.IsDNSLabel(s.Federation):
		return fmt.Errorf("%w: federation %q is not a DNS label", ErrInvalid, s.Federation)
	case !manifest.IsDNSLabel(s.Service):
		return fmt.Errorf("%w: service %q is not a DNS label", ErrInvalid, s.Service)
	case s.Node == "":
		return fmt.Errorf("%w: node name missing", ErrInvalid)
	case s.Address == "":
		return fmt.Errorf("%w: address missing", ErrInvalid)
	case CheckAddress(s.Address) != nil:
		return CheckAddress(s.Address)
	case s.Port < 1 || s.Port > 65535:
		return fmt.Errorf("%w: port %d is not 1 to 65535", ErrInvalid, s.Port)
	}
	return nil
}

// OwnerOption configures an Owner.
type OwnerOption func(*ownerConfig)

type ownerConfig struct {
	ttl, lockDelay, maxBackoff, holdCheck time.Duration
}

// WithOwnerTTL sets how long the instance outlives its owner's last
// heartbeat (default 3s; heartbeats go out three times per TTL).
func WithOwnerTTL(d time.Duration) OwnerOption { return func(c *ownerConfig) { c.ttl = d } }

// WithHoldCheck sets how often a registered owner reads its instance key
// to notice a loss its local agent cannot see: its session destroyed by
// hand, or its node declared failed (default 10s). Check failures are seen
// within the owner TTL whatever this is.
func WithHoldCheck(d time.Duration) OwnerOption { return func(c *ownerConfig) { c.holdCheck = d } }

// WithMaxBackoff caps the wait between re-registration attempts (default 2s).
func WithMaxBackoff(d time.Duration) OwnerOption { return func(c *ownerConfig) { c.maxBackoff = d } }

// Owner keeps one instance registered while it runs: in the Consul catalog
// with the manifest's health check, and in KV under a session that Consul
// invalidates when the node fails, the owner stops heartbeating or the
// health check goes critical. Whenever the instance is lost and the owner
// is alive, it registers again with exponential backoff.
type Owner struct {
	c        *Client
	spec     InstanceSpec
	cfg      ownerConfig
	log      *slog.Logger
	checkIDs checkIDs

	current    atomic.Pointer[binding.Instance] // set while registered; written by run only
	registered chan struct{}                    // closed at the first registration
	once       sync.Once
	done       chan struct{}         // closed when run returns
	err        atomic.Pointer[error] // why run stopped by itself
	recheck    chan struct{}         // Recheck's nudge to hold; capacity 1

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type checkIDs struct{ owner, health string }

// Register starts an Owner for spec. It fails at once, touching nothing,
// when the spec is invalid or the service is not published; after that,
// failures are retried until Close.
func (c *Client) Register(ctx context.Context, spec InstanceSpec, opts ...OwnerOption) (*Owner, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	m, err := c.Manifest(ctx, spec.Federation, spec.Service)
	if err != nil {
		return nil, err
	}
	cfg := ownerConfig{ttl: DefaultOwnerTTL, lockDelay: DefaultLockDelay, maxBackoff: DefaultMaxBackoff, holdCheck: DefaultHoldCheck}
	for _, opt := range opts {
		opt(&cfg)
	}
	// A fresh owner check ID per owner: re-registering the catalog service
	// drops a previous owner's check, which invalidates that owner's session
	// at once, so a restarted owner takes over without waiting for a TTL.
	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	id := spec.ID()
	o := &Owner{
		c: c, spec: spec, cfg: cfg,
		log:        c.log.With("instance", id, "federation", spec.Federation),
		checkIDs:   checkIDs{owner: id + ":owner:" + hex.EncodeToString(nonce), health: HealthCheckID(id)},
		registered: make(chan struct{}), done: make(chan struct{}), recheck: make(chan struct{}, 1),
	}
	ctx, o.cancel = context.WithCancel(ctx)
	o.wg.Add(2)
	go func() { defer o.wg.Done(); o.heartbeat(ctx) }()
	go func() { defer o.wg.Done(); o.run(ctx, m) }()
	return o, nil
}

// ID is the instance's ID.
func (o *Owner) ID() string { return o.spec.ID() }

// Current returns the instance as registered now, if it is.
func (o *Owner) Current() (binding.Instance, bool) {
	if in := o.current.Load(); in != nil {
		return *in, true
	}
	return binding.Instance{}, false
}

// WaitRegistered blocks until the instance has been registered once, or
// the owner stopped (Err).
func (o *Owner) WaitRegistered(ctx context.Context) error {
	select {
	case <-o.registered:
		return nil
	case <-o.done:
		if err := o.Err(); err != nil {
			return err
		}
		return fmt.Errorf("registry: %s stopped before it registered", o.ID())
	case <-ctx.Done():
		return fmt.Errorf("registry: waiting for %s to register: %w", o.ID(), ctx.Err())
	}
}

// Recheck has the owner read its instance key now rather than at its next
// hold check: the resolver saw the instance leave the registry, which a
// server can cause without the owner's agent noticing (events.InstancesGone).
// It never blocks, and the owner reads at most once every
// MinRecheckInterval however often it is asked, so that whoever can send
// the nudge cannot turn it into load on Consul.
func (o *Owner) Recheck() {
	select {
	case o.recheck <- struct{}{}:
	default: // one is pending already
	}
}

// MinRecheckInterval is the least time between two reads Recheck asks for.
const MinRecheckInterval = time.Second

// Close deregisters the instance at once and stops the owner.
func (o *Owner) Close(ctx context.Context) error {
	o.cancel()
	o.wg.Wait()
	q, cancel := o.c.query(ctx)
	defer cancel()
	// run has destroyed the session, removing the instance, index and lock
	// keys; this removes the catalog entry and its checks.
	if err := o.c.consul.Agent().ServiceDeregisterOpts(o.ID(), q); err != nil {
		return o.c.fail(ctx, err, "deregister %s", o.ID())
	}
	return nil
}

// heartbeat keeps the owner check passing. A failure is only logged: if
// the check lapses, the session ends and run registers again.
func (o *Owner) heartbeat(ctx context.Context) {
	o.c.keepPassing(ctx, o.checkIDs.owner, "owner alive", o.cfg.ttl, o.log)
}

func (o *Owner) passOwnerCheck(ctx context.Context) error {
	return o.c.passCheck(ctx, o.checkIDs.owner, "owner alive")
}

// keepPassing passes a TTL check three times per ttl until ctx ends; a
// failure is logged at debug level: the check lapsing is what reports it.
func (c *Client) keepPassing(ctx context.Context, checkID, note string, ttl time.Duration, log *slog.Logger) {
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := c.passCheck(ctx, checkID, note); err != nil {
				log.Debug("heartbeat failed", "check", checkID, "err", err)
			}
		}
	}
}

// passCheck passes a TTL check on the local agent.
func (c *Client) passCheck(ctx context.Context, checkID, note string) error {
	q, cancel := c.query(ctx)
	defer cancel()
	return c.consul.Agent().UpdateTTLOpts(checkID, note, api.HealthPassing, q)
}

// run registers the instance, from the manifest m Register read, and
// registers it again, from a fresh read, whenever it is lost, until ctx ends
// or Consul refuses a permission, which no retry mends: the owner stops and
// Err says why.
func (o *Owner) run(ctx context.Context, m *manifest.Manifest) {
	defer close(o.done)
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 100*time.Millisecond, o.cfg.maxBackoff, 0
	b.Reset() // NewExponentialBackOff started from its own default interval
	rejoin := rejoiner{o: o}
	for ctx.Err() == nil {
		err := o.registerAndHold(ctx, m, b.Reset)
		m = nil
		o.current.Store(nil)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrPermissionDenied) {
			o.err.Store(&err)
			o.log.Error("instance cannot be registered: fix the ACL token's policy; the owner stops", "err", err)
			return
		}
		wait := b.NextBackOff()
		o.log.Warn("instance not registered; retrying", "err", err, "retry_in", wait)
		rejoin.after(ctx, err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Done closes when the owner has stopped: closed, or stopped by an error
// that retrying cannot mend (Err).
func (o *Owner) Done() <-chan struct{} { return o.done }

// Err is why the owner stopped by itself; nil while it runs or after Close.
func (o *Owner) Err() error {
	if err := o.err.Load(); err != nil {
		return *err
	}
	return nil
}

// registerAndHold registers the instance and returns when it is lost. It
// calls registered once the instance is in KV.
func (o *Owner) registerAndHold(ctx context.Context, m *manifest.Manifest, registered func()) error {
	if m == nil {
		var err error
		if m, err = o.c.Manifest(ctx, o.spec.Federation, o.spec.Service); err != nil {
			return err
		}
	}
	if err := o.registerService(ctx, m); err != nil {
		return err
	}
	if m.Health != nil {
		if err := o.waitHealthy(ctx, m.ID); err != nil {
			return err
		}
		// The owner check passed at registration; waiting for health may
		// have taken longer than its TTL.
		if err := o.passOwnerCheck(ctx); err != nil {
			return o.c.fail(ctx, err, "pass owner check of %s", o.ID())
		}
	}
	sid, err := o.createSession(ctx, m.Health != nil)
	if err != nil {
		return err
	}
	defer o.destroySession(sid)
	lost := make(<-chan struct{})
	if m.Unique {
		var unlock func()
		if lost, unlock, err = o.lockUnique(ctx, sid); err != nil {
			return err
		}
		defer unlock()
	}
	in, err := o.instance(ctx, m, sid)
	if in.Index >= 0 {
		defer o.deleteKey(o.c.keys.indexes(in.Federation, in.Service)+strconv.Itoa(in.Index), sid)
	}
	if err != nil {
		return err
	}
	instanceKey := o.c.keys.instance(in.Federation, in.Service, in.ID)
	if err := o.acquire(ctx, instanceKey, sid, in); err != nil {
		return err
	}
	defer o.deleteKey(instanceKey, sid)
	o.current.Store(&in)
	o.once.Do(func() { close(o.registered) })
	registered()
	o.log.Info("instance registered", "address", in.Address, "port", in.Port, "index", in.Index)
	// Only a warning: read once the instance is in KV, not on the way
	// there, where the read delayed every registration by a round trip.
	o.warnOtherNode(ctx, sid)
	return o.hold(ctx, in, sid, lost)
}

// registerService puts the instance in the Consul catalog with an owner
// TTL check (passing from the start) and the manifest's health check.
func (o *Owner) registerService(ctx context.Context, m *manifest.Manifest) error {
	s := o.spec
	tags := []string{"patchbay", "federation=" + s.Federation}
	if m.Public {
		tags = append(tags, "public")
	}
	reg := &api.AgentServiceRegistration{
		ID: o.ID(), Name: s.Service, Address: s.Address, Port: s.Port, Tags: tags,
		Meta:   map[string]string{"patchbay_federation": s.Federation, "patchbay_node": s.Node, "patchbay_region": s.Region},
		Checks: api.AgentServiceChecks{aliveCheck(o.checkIDs.owner, "patchbay owner of "+o.ID(), o.cfg.ttl)},
	}
	if hc, err := o.healthCheck(m); err != nil {
		return err
	} else if hc != nil {
		reg.Checks = append(reg.Checks, hc)
	}
	return o.c.registerWithAgent(ctx, reg)
}

// aliveCheck is a TTL check, passing from the start, that a process keeps
// passing while it lives; a session tied to it ends TTL after the process
// does. Consul drops the service a minute after the check went critical.
func aliveCheck(id, name string, ttl time.Duration) *api.AgentServiceCheck {
	return &api.AgentServiceCheck{CheckID: id, Name: name, TTL: ttl.String(), Status: api.HealthPassing, DeregisterCriticalServiceAfter: "1m"}
}

// registerWithAgent puts a service and its checks in the catalog through
// the local agent.
func (c *Client) registerWithAgent(ctx context.Context, reg *api.AgentServiceRegistration) error {
	w, cancel := c.write(ctx)
	defer cancel()
	if err := c.consul.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(w.Context())); err != nil {
		return c.fail(ctx, err, "register %s with the local agent", reg.ID)
	}
	return nil
}

// healthCheck turns the manifest's health section into a Consul check.
func (o *Owner) healthCheck(m *manifest.Manifest) (*api.AgentServiceCheck, error) {
	h := m.Health
	if h == nil {
		return nil, nil
	}
	vars := o.vars(m, -1)
	check := &api.AgentServiceCheck{CheckID: o.checkIDs.health, Name: m.ID + " health"}
	var err error
	switch {
	case h.HTTP != "":
		check.HTTP, err = manifest.Expand(h.HTTP, vars)
	case h.TCP != "":
		check.TCP, err = manifest.Expand(h.TCP, vars)
	default:
		check.TTL = h.TTL.String()
	}
	if err != nil {
		return nil, fmt.Errorf("registry: health check of %s: %w", m.ID, err)
	}
	if h.TTL == 0 {
		check.Interval, check.Timeout = h.Interval.String(), h.Timeout.String()
	}
	return check, nil
}

// waitHealthy blocks until the catalog shows the health check passing: a
// session can only be tied to a passing check. A blocking query on the
// service's checks wakes the moment the state changes, where retrying would
// add up to the backoff's wait.
func (o *Owner) waitHealthy(ctx context.Context, service string) error {
	var index uint64
	for logged := false; ; logged = true {
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: time.Minute}).WithContext(ctx)
		checks, meta, err := o.c.consul.Health().Checks(service, q)
		if err != nil {
			return o.c.fail(ctx, err, "read health of %s", o.ID())
		}
		for _, c := range checks {
			if c.CheckID == o.checkIDs.health && c.Status == api.HealthPassing {
				return nil
			}
		}
		if !logged {
			o.log.Info("waiting for the health check to pass", "check", o.checkIDs.health)
		}
		index = meta.LastIndex
	}
}

// createSession makes the session that holds the instance's keys, tied to
// the node, the owner check and, when there is one, the health check.
func (o *Owner) createSession(ctx context.Context, withHealth bool) (string, error) {
	entry := map[string]any{
		"Name":          o.sessionName(),
		"Behavior":      api.SessionBehaviorDelete,
		"LockDelay":     o.cfg.lockDelay.String(),
		"NodeChecks":    []string{"serfHealth"},
		"ServiceChecks": []api.ServiceCheck{{ID: o.checkIDs.owner}},
	}
	if withHealth {
		entry["ServiceChecks"] = []api.ServiceCheck{{ID: o.checkIDs.owner}, {ID: o.checkIDs.health}}
	}
	return o.c.createSession(ctx, entry)
}

// warnOtherNode logs when the session is on another Consul node than the
// instance names: the resolver never counts such an instance live, which
// would otherwise show only as a requirement nobody binds.
func (o *Owner) warnOtherNode(ctx context.Context, sid string) {
	q, cancel := o.c.query(ctx)
	defer cancel()
	entry, _, err := o.c.consul.Session().Info(sid, q)
	if err != nil || entry == nil || entry.Node == o.spec.Node || o.c.sharedAgents[entry.Node] {
		return
	}
	o.log.Error("the instance names another node than the local Consul agent's, so it is never live: set the node to the agent's node name",
		"node", o.spec.Node, "agent_node", entry.Node)
}

// sessionName names the sessions of this instance's owners; a session of
// that name holding the instance's key is an earlier owner of it.
func (o *Owner) sessionName() string { return "patchbay instance " + o.ID() }

// deleteKey removes a key while session sid still holds it. Destroying a
// session applies the lock delay to the keys it holds; deleting them first
// lets a stopped instance's index pass on at once, while an owner that dies
// keeps the delay's protection. The check-and-set makes sure a key someone
// else has claimed since is left alone.
func (o *Owner) deleteKey(key, sid string) {
	ctx, cancel := context.WithTimeout(context.Background(), o.c.timeout)
	defer cancel()
	pair, _, err := o.c.consul.KV().Get(key, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil || pair == nil || pair.Session != sid {
		return
	}
	if _, _, err := o.c.consul.KV().DeleteCAS(pair, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		o.log.Debug("delete key", "key", key, "err", err)
	}
}

// destroySession releases every key the session holds. It runs on the way
// out of registerAndHold, so it gets its own bounded context.
func (o *Owner) destroySession(sid string) {
	ctx, cancel := context.WithTimeout(context.Background(), o.c.timeout)
	defer cancel()
	if _, err := o.c.consul.Session().Destroy(sid, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		o.log.Debug("destroy session", "session", sid, "err", err)
	}
}

// lockUnique blocks until this instance holds its unique service, standing
// by while another does. The returned channel closes if the lock is lost;
// unlock stops consul/api's monitor of the lock.
func (o *Owner) lockUnique(ctx context.Context, sid string) (lost <-chan struct{}, unlock func(), err error) {
	key := o.c.keys.uniqueLock(o.spec.Federation, o.spec.Service)
	lock, err := o.c.consul.LockOpts(&api.LockOptions{Key: key, Session: sid, Value: []byte(o.ID())})
	if err != nil {
		return nil, nil, fmt.Errorf("registry: lock %s: %w", key, err)
	}
	o.log.Info("unique service: standing by until the lock is free", "key", key)
	lost, err = lock.Lock(ctx.Done())
	if err != nil {
		return nil, nil, o.c.fail(ctx, err, "acquire %s", key)
	}
	if lost == nil {
		return nil, nil, fmt.Errorf("registry: lock %s: %w", key, ctx.Err())
	}
	return lost, func() { _ = lock.Unlock() }, nil
}

// instance builds the instance record, allocating its index if the service
// is indexed.
func (o *Owner) instance(ctx context.Context, m *manifest.Manifest, sid string) (binding.Instance, error) {
	s := o.spec
	in := binding.Instance{ID: o.ID(), Service: s.Service, Federation: s.Federation, Node: s.Node, Address: s.Address, Port: s.Port, Region: s.Region, Index: -1, Public: m.Public, Provides: map[string]string{}}
	if m.Indexed {
		n, err := o.allocateIndex(ctx, sid)
		if err != nil {
			return in, err
		}
		in.Index = n
	}
	vars := o.vars(m, in.Index)
	for k, tpl := range m.Provides {
		v, err := manifest.Expand(tpl, vars)
		if err != nil {
			return in, fmt.Errorf("registry: provides %s of %s: %w", k, m.ID, err)
		}
		in.Provides[k] = v
	}
	return in, nil
}

// vars are the placeholder values of this instance: environment keys,
// overridden by the instance's own.
func (o *Owner) vars(m *manifest.Manifest, index int) map[string]string {
	vars := map[string]string{}
	for k, v := range m.Environment {
		vars[k] = v
	}
	vars[manifest.PlaceholderHost] = o.spec.Address
	vars[manifest.PlaceholderPort] = strconv.Itoa(o.spec.Port)
	vars[manifest.PlaceholderNode] = o.spec.Node
	vars[manifest.PlaceholderRegion] = o.spec.Region
	if index >= 0 {
		vars[manifest.PlaceholderIndex] = strconv.Itoa(index)
	}
	return vars
}

// allocateIndex claims the smallest index no live instance holds. Each
// index is a key acquired by the session, which is atomic, so two live
// instances never share one; the key goes with the session.
func (o *Owner) allocateIndex(ctx context.Context, sid string) (int, error) {
	base := o.c.keys.indexes(o.spec.Federation, o.spec.Service)
	for n := range maxIndex {
		w, cancel := o.c.write(ctx)
		ok, _, err := o.c.consul.KV().Acquire(&api.KVPair{Key: base + strconv.Itoa(n), Value: []byte(o.ID()), Session: sid}, w)
		cancel()
		if err != nil {
			return -1, o.c.fail(ctx, err, "claim index %d of %s", n, o.spec.Service)
		}
		if ok {
			return n, nil
		}
	}
	return -1, fmt.Errorf("registry: %s has no free index below %d", o.spec.Service, maxIndex)
}

// acquire writes the instance record held by the session. A key still
// held by an earlier session of this instance (its owner lost it while
// Consul was unreachable, and could not destroy it) is taken over: that
// session is destroyed first.
func (o *Owner) acquire(ctx context.Context, key, sid string, in binding.Instance) error {
	data, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("registry: encode instance %s: %w", in.ID, err)
	}
	for attempt := 0; ; attempt++ {
		w, cancel := o.c.write(ctx)
		ok, _, err := o.c.consul.KV().Acquire(&api.KVPair{Key: key, Value: data, Session: sid}, w)
		cancel()
		if err != nil {
			return o.c.fail(ctx, err, "write %s", key)
		}
		if ok {
			return nil
		}
		if attempt > 0 || !o.releaseEarlierSession(ctx, key, sid) {
			return fmt.Errorf("%w: %s is held by another session (a previous owner not yet expired?)", ErrConflict, key)
		}
	}
}

// releaseEarlierSession destroys the session holding key if it is an
// earlier one of this instance's, and says whether it did.
func (o *Owner) releaseEarlierSession(ctx context.Context, key, sid string) bool {
	q, cancel := o.c.query(ctx)
	defer cancel()
	pair, _, err := o.c.consul.KV().Get(key, q)
	if err != nil || pair == nil || pair.Session == "" || pair.Session == sid {
		return false
	}
	entry, _, err := o.c.consul.Session().Info(pair.Session, q)
	if err != nil || entry == nil || entry.Name != o.sessionName() {
		return false
	}
	o.log.Info("taking over the instance key from an earlier session of this instance", "session", pair.Session)
	o.destroySession(pair.Session)
	return true
}

// errLost reports that Consul removed the instance.
var errLost = errors.New("registry: instance removed (session invalidated: owner check, health check or node failed)")

// DefaultHoldCheck is how often an owner reads its instance key while it
// holds it. Each read is one non-blocking, stale-allowed read that any
// Consul server answers from memory: the fleet holds no blocking query per
// instance.
const DefaultHoldCheck = 10 * time.Second

// hold returns when the instance is lost: its session's checks went
// critical (seen at once on the local agent), its key is gone or held by
// another session (read every hold check, when Recheck asks, and every
// TTL while Consul does not answer), or the unique lock is lost.
// Consul being unreachable is no loss: the session outlives an outage as
// long as its checks pass, so the owner keeps it and carries on.
func (o *Owner) hold(ctx context.Context, in binding.Instance, sid string, lost <-chan struct{}) error {
	key := o.c.keys.instance(in.Federation, in.Service, in.ID)
	local := time.NewTicker(o.cfg.ttl)
	defer local.Stop()
	remote := time.NewTicker(o.cfg.holdCheck)
	defer remote.Stop()
	var lastRecheck time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-lost:
			return fmt.Errorf("registry: unique lock of %s lost", in.Service)
		case <-local.C:
			if critical := o.criticalCheck(ctx); critical != "" {
				return fmt.Errorf("%w: check %s is critical", errLost, critical)
			}
		case <-o.recheck:
			if time.Since(lastRecheck) < MinRecheckInterval {
				continue
			}
			lastRecheck = time.Now()
			o.log.Debug("the resolver saw the instance leave; reading its key now")
			// From the leader: a follower may not have applied yet the
			// removal the resolver saw.
			if err := o.readKey(ctx, key, sid, remote, false); err != nil {
				return err
			}
		case <-remote.C:
			if err := o.readKey(ctx, key, sid, remote, true); err != nil {
				return err
			}
		}
	}
}

// readKey reads the instance key, from any server when stale: errLost
// when it is gone or another session holds it. It sets when remote next
// reads it.
func (o *Owner) readKey(ctx context.Context, key, sid string, remote *time.Ticker, stale bool) error {
	q := (&api.QueryOptions{AllowStale: stale}).WithContext(ctx)
	pair, _, err := o.c.consul.KV().Get(key, q)
	switch {
	case err != nil:
		// Cut off from the servers (a partition, an outage): read again
		// every TTL, so that the instance is registered again within
		// seconds of Consul answering if it was lost meanwhile.
		o.log.Debug("cannot read the instance key; holding on", "err", o.c.fail(ctx, err, "read %s", key))
		remote.Reset(o.cfg.ttl)
		return nil
	case pair == nil || pair.Session != sid:
		return errLost
	}
	remote.Reset(o.cfg.holdCheck)
	return nil
}

// criticalCheck names a check of the instance that the local agent sees
// critical, "" if none: its session is invalidated then. The agent answers
// from its own state, without a server.
func (o *Owner) criticalCheck(ctx context.Context) string {
	q, cancel := o.c.query(ctx)
	defer cancel()
	checks, err := o.c.consul.Agent().ChecksWithFilterOpts("ServiceID == "+strconv.Quote(o.ID()), q)
	if err != nil {
		return ""
	}
	for _, id := range []string{o.checkIDs.owner, o.checkIDs.health} {
		if c, ok := checks[id]; ok && c.Status == api.HealthCritical {
			return id
		}
	}
	return ""
}
