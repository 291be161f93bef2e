package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// caseConsulLeaderKill: kill -9 the Consul leader server; a change made as
// soon as Consul accepts writes again must reach every host within 3 s.
func caseConsulLeaderKill(ctx context.Context, t *testing.T, c *cluster, r *results) {
	const name = "Consul leader server killed"
	s, err := c.consulLeader()
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := s.agent.kill(); err != nil {
		t.Fatal(err)
	}
	seq, wrote, err := c.changeWhenWritable(ctx, c.opts.wait)
	if err != nil {
		t.Errorf("consul never accepted writes after its leader died: %v", err)
	} else {
		r.add(name, fmt.Sprintf("Consul accepts writes again %s after the kill (Raft election)", secs(wrote.Sub(killed))), "-", nil)
		seen := firstTimes(ctx, c.opts.wait, map[string]func() error{
			"change": func() error {
				_, err := c.waitMark(ctx, c.hosts, seq, 0)
				return err
			},
			"owners": func() error { return c.allRegistered(ctx) },
		})
		met := r.timed(name, "change made then → all files", sinceSeen(wrote, seen, "change"), 3*time.Second, c.opts.wait)
		c.expect(t, met, "change after a Consul leader kill")
		met = r.timed(name, "every instance owner registered (again)", sinceSeen(wrote, seen, "owners"), 5*time.Second, c.opts.wait)
		c.expect(t, met, "owners after a Consul leader kill")
	}
	if err := s.agent.start(); err != nil {
		t.Fatal(err)
	}
	if err := c.waitConsul(ctx, time.Minute); err != nil {
		t.Errorf("cluster not whole again after %s restarted: %v", s.name, err)
	}
}

// consulLeader is the server Raft elected.
func (c *cluster) consulLeader() (*server, error) {
	cl, err := c.consul()
	if err != nil {
		return nil, err
	}
	addr, err := cl.Status().Leader()
	if err != nil {
		return nil, fmt.Errorf("consul leader: %w", err)
	}
	for _, s := range c.servers {
		if addr == s.ip+":8300" {
			return s, nil
		}
	}
	return nil, fmt.Errorf("consul leader %q is none of the suite's servers", addr)
}

// caseResolverLeaderKill: kill -9 the leading resolver while a standby
// runs; a change made right after must reach every host within 5 s.
func caseResolverLeaderKill(ctx context.Context, t *testing.T, c *cluster, r *results) {
	const name = "resolver leader kill -9, standby running"
	rh, err := c.resolverLeader()
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := rh.resolver.kill(); err != nil {
		t.Fatal(err)
	}
	seq, _, err := c.change(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done, err := c.waitMark(ctx, c.hosts, seq, c.opts.wait)
	met := r.timed(name, "takeover: change made right after the kill → all files", since(killed, done, err), 5*time.Second, c.opts.wait)
	c.expect(t, met, "resolver takeover")
	if err := rh.resolver.start(); err != nil {
		t.Fatal(err)
	}
}

const leaderKey = "patchbay/locks/leader/resolver"

// resolverLeader is the resolver whose name the held leader lock carries.
func (c *cluster) resolverLeader() (*resolverHost, error) {
	var leader *resolverHost
	err := poll(context.Background(), 30*time.Second, func() error {
		name, err := c.lockHolder()
		if err != nil {
			return err
		}
		for _, rh := range c.res {
			if rh.name == name {
				leader = rh
				return nil
			}
		}
		return fmt.Errorf("leader lock held by %q, none of the suite's resolvers", name)
	})
	return leader, err
}

// lockHolder is the value of the leader lock while a session holds it.
func (c *cluster) lockHolder() (string, error) {
	cl, err := c.consul()
	if err != nil {
		return "", err
	}
	pair, _, err := cl.KV().Get(leaderKey, nil)
	if err != nil {
		return "", err
	}
	if pair == nil || pair.Session == "" {
		return "", fmt.Errorf("no resolver holds %s", leaderKey)
	}
	return string(pair.Value), nil
}

// hold keeps a fault in place for d: the fault's length is the case's
// input, not a wait for something to happen.
func hold(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// firstTimes polls the named conditions together until all hold or timeout
// passes, and returns when each first held (missing: never).
func firstTimes(ctx context.Context, timeout time.Duration, conds map[string]func() error) map[string]time.Time {
	seen := map[string]time.Time{}
	_ = poll(ctx, timeout, func() error {
		for name, cond := range conds {
			if _, ok := seen[name]; !ok && cond() == nil {
				seen[name] = time.Now()
			}
		}
		if len(seen) < len(conds) {
			return fmt.Errorf("%d of %d conditions hold", len(seen), len(conds))
		}
		return nil
	})
	return seen
}

func sinceSeen(a time.Time, seen map[string]time.Time, name string) time.Duration {
	b, ok := seen[name]
	if !ok {
		return -1
	}
	return b.Sub(a)
}

// caseConsulDown: all three servers stopped for the outage, then started;
// once Consul accepts writes, the resolver must lead, every owner must be
// registered again and a change must converge within 5 s.
func caseConsulDown(ctx context.Context, t *testing.T, c *cluster, r *results) {
	name := fmt.Sprintf("Consul fully down %s, then back", secs(c.opts.outage))
	for _, s := range c.servers {
		if err := s.agent.stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := hold(ctx, c.opts.outage); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	for _, s := range c.servers {
		if err := s.agent.start(); err != nil {
			t.Fatal(err)
		}
	}
	seq, wrote, err := c.changeWhenWritable(ctx, c.opts.wait)
	if err != nil {
		t.Fatalf("consul never accepted writes again: %v", err)
	}
	r.add(name, fmt.Sprintf("Consul accepts writes %s after the servers start", secs(wrote.Sub(started))), "-", nil)
	seen := firstTimes(ctx, c.opts.wait, map[string]func() error{
		// The leader lock's key can look held by a session that outlived the
		// outage; the resolver storing the change is what shows one leads.
		"lead": func() error {
			b, err := c.storedBinding()
			if err == nil && markSeq(b.Vars["MARK"].Value) < seq {
				err = fmt.Errorf("binding still has %s", b.Vars["MARK"].Value)
			}
			return err
		},
		"change": func() error {
			_, err := c.waitMark(ctx, c.hosts, seq, 0)
			return err
		},
		"owners": func() error { return c.allRegistered(ctx) },
	})
	r.timed(name, "a resolver leads again: the change's binding stored", sinceSeen(wrote, seen, "lead"), 5*time.Second, c.opts.wait)
	met := r.timed(name, "change made once writable → all files", sinceSeen(wrote, seen, "change"), 5*time.Second, c.opts.wait)
	c.expect(t, met, "change after a Consul outage")
	met = r.timed(name, "every instance owner registered again", sinceSeen(wrote, seen, "owners"), 5*time.Second, c.opts.wait)
	c.expect(t, met, "owners after a Consul outage")
	if err := c.waitConsul(ctx, time.Minute); err != nil {
		t.Errorf("cluster not whole again: %v", err)
	}
}
