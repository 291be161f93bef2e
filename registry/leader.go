package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// Candidate defaults. A dead leader's lock is free about LeaderTTL after its
// last heartbeat: the candidate's TTL check goes critical and Consul
// invalidates its session at once, where a session TTL would be stretched
// to 2× with a 10 s minimum. The lock has no lock delay: every write a
// leader makes is a check-and-set, so a stale leader cannot overwrite its
// successor's work, and a delay would only add to every takeover.
const (
	DefaultLeaderTTL = 3 * time.Second
	// monitorRetryTime is how often a leader retries reading its lock while
	// Consul has no leader or is unreachable; it keeps retrying as long as
	// its session lives, so an election or an outage costs no leadership.
	monitorRetryTime = 500 * time.Millisecond
	// standbyWait bounds each blocking query of a standby on the lock:
	// consul/api checks whether to stop only between them, so a stopped
	// standby leaves within it (with consul/api's default, 15 s, every
	// `systemctl stop` of a standby waited that long), at the cost of one
	// query of the lock key every 2 s per standby.
	standbyWait = 2 * time.Second
)

// Candidate runs for leadership of one name ("resolver") as one holder. It
// keeps one session for its whole life, tied to the agent's node and to a
// TTL check the candidate keeps passing: a leader that dies loses the lock
// within the TTL, and a leader cut off by a Consul election or outage keeps
// it, and its session, when Consul comes back.
type Candidate struct {
	c       *Client
	name    string
	holder  string
	ttl     time.Duration
	log     *slog.Logger
	service string // the catalog registration that carries the TTL check
	checkID string

	// mu guards session and closed, never across a call to Consul: Close
	// must not wait behind an Acquire stuck on a slow session read.
	mu      sync.Mutex
	session string
	closed  bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Campaign registers the candidate's TTL check with the local agent and
// keeps it passing until Close; Acquire then waits for the lock.
func (c *Client) Campaign(ctx context.Context, name, holder string) (*Candidate, error) {
	cand := &Candidate{c: c, name: name, holder: holder, ttl: DefaultLeaderTTL, log: c.log.With("leader_lock", name, "holder", holder)}
	cand.service = "patchbay-" + name + "-" + holder
	cand.checkID = cand.service + ":alive"
	if err := cand.register(ctx); err != nil {
		return nil, err
	}
	ctx, cand.cancel = context.WithCancel(context.WithoutCancel(ctx))
	cand.wg.Go(func() { cand.heartbeat(ctx) })
	return cand, nil
}

// register puts the candidate in the local agent's catalog with the TTL
// check its session is tied to, passing from the start. It runs again with
// every new session: an agent restarted without its state has forgotten it.
func (cand *Candidate) register(ctx context.Context) error {
	return cand.c.registerWithAgent(ctx, &api.AgentServiceRegistration{
		ID: cand.service, Name: "patchbay-" + cand.name, Tags: []string{"patchbay"},
		Meta:   map[string]string{"patchbay_holder": cand.holder},
		Checks: api.AgentServiceChecks{aliveCheck(cand.checkID, "patchbay "+cand.name+" "+cand.holder+" alive", cand.ttl)},
	})
}

func (cand *Candidate) heartbeat(ctx context.Context) {
	cand.c.keepPassing(ctx, cand.checkID, "alive", cand.ttl, cand.log)
}

// Leadership is held by at most one process at a time.
type Leadership struct {
	lock *api.Lock
	// Lost closes when leadership is lost: the session was invalidated or
	// someone else holds the lock. Consul being unreachable does not close
	// it while the session lives.
	Lost <-chan struct{}
}

// Release gives leadership up: a standby takes over at once.
func (l *Leadership) Release() error { return l.lock.Unlock() }

// Acquire blocks until the candidate leads or ctx ends; standbys wait here
// on one blocking query of the lock key. A candidate that lost leadership
// through an outage but whose session lived through it leads again at once.
func (cand *Candidate) Acquire(ctx context.Context) (*Leadership, error) {
	key := cand.c.keys.leader(cand.name)
	sid, err := cand.liveSession(ctx)
	if err != nil {
		return nil, err
	}
	lock, err := cand.c.consul.LockOpts(&api.LockOptions{
		Key: key, Value: []byte(cand.holder), Session: sid,
		MonitorRetries: 1 << 30, MonitorRetryTime: monitorRetryTime, LockWaitTime: standbyWait,
	})
	if err != nil {
		return nil, fmt.Errorf("registry: leader lock %s: %w", key, err)
	}
	lost, err := lock.Lock(ctx.Done())
	if err != nil {
		return nil, cand.c.fail(ctx, err, "acquire %s", key)
	}
	if lost == nil {
		return nil, fmt.Errorf("registry: leader lock %s: %w", key, ctx.Err())
	}
	return &Leadership{lock: lock, Lost: lost}, nil
}

// errCandidateClosed ends an Acquire that Close overtook.
var errCandidateClosed = errors.New("registry: the candidacy was closed")

// liveSession returns the candidate's session, creating it when there is
// none or Consul has invalidated it.
func (cand *Candidate) liveSession(ctx context.Context) (string, error) {
	sid, closed := cand.state()
	if closed {
		return "", errCandidateClosed
	}
	if sid != "" {
		q, cancel := cand.c.query(ctx)
		entry, _, err := cand.c.consul.Session().Info(sid, q)
		cancel()
		if err != nil {
			return "", cand.c.fail(ctx, err, "read session of %s", cand.service)
		}
		if entry != nil {
			return sid, nil
		}
		if _, closed := cand.state(); closed {
			return "", errCandidateClosed // not registered again behind Close's back
		}
		cand.log.Info("leader session invalidated; creating a new one")
	}
	if err := cand.register(ctx); err != nil {
		return "", err
	}
	sid, err := cand.c.createSession(ctx, map[string]any{
		"Name":          "patchbay " + cand.name + " leader " + cand.holder,
		"Behavior":      api.SessionBehaviorRelease,
		"LockDelay":     "0s",
		"NodeChecks":    []string{"serfHealth"},
		"ServiceChecks": []api.ServiceCheck{{ID: cand.checkID}},
	})
	if err != nil {
		return "", err
	}
	cand.mu.Lock()
	closed = cand.closed
	if !closed {
		cand.session = sid
	}
	cand.mu.Unlock()
	if closed { // Close ran meanwhile and cleaned up what it saw, not this
		return "", errors.Join(errCandidateClosed, cand.cleanUp(ctx, sid))
	}
	return sid, nil
}

// state is the candidate's session and whether it was closed.
func (cand *Candidate) state() (session string, closed bool) {
	cand.mu.Lock()
	defer cand.mu.Unlock()
	return cand.session, cand.closed
}

// Close ends the candidacy: its session (so a held lock passes on at once)
// and its catalog registration.
func (cand *Candidate) Close(ctx context.Context) error {
	cand.cancel()
	cand.wg.Wait()
	cand.mu.Lock()
	sid := cand.session
	cand.closed = true
	cand.mu.Unlock()
	return cand.cleanUp(ctx, sid)
}

// cleanUp destroys session sid, if any, and deregisters the candidate.
func (cand *Candidate) cleanUp(ctx context.Context, sid string) error {
	w, cancel := cand.c.write(ctx)
	defer cancel()
	if sid != "" {
		if _, err := cand.c.consul.Session().Destroy(sid, w); err != nil {
			return cand.c.fail(ctx, err, "destroy the leader session of %s", cand.service)
		}
	}
	if err := cand.c.consul.Agent().ServiceDeregisterOpts(cand.service, (&api.QueryOptions{}).WithContext(w.Context())); err != nil {
		return cand.c.fail(ctx, err, "deregister %s", cand.service)
	}
	return nil
}

// createSession creates a session from a raw entry: consul/api's
// SessionEntry drops a zero LockDelay, which Consul then reads as its 15 s
// default.
func (c *Client) createSession(ctx context.Context, entry map[string]any) (string, error) {
	w, cancel := c.write(ctx)
	defer cancel()
	var out struct{ ID string }
	if _, err := c.consul.Raw().Write("/v1/session/create", entry, &out, w); err != nil {
		return "", c.fail(ctx, err, "create session %q", entry["Name"])
	}
	return out.ID, nil
}
