package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// options are the suite's knobs, from the environment (see
// docs/failure-behaviour.md).
type options struct {
	outage    time.Duration // PATCHBAY_CHAOS_OUTAGE: Consul and NATS down
	partition time.Duration // PATCHBAY_CHAOS_PARTITION: one host cut off
	kills     int           // PATCHBAY_CHAOS_KILLS: listener kill -9 rounds
	wait      time.Duration // PATCHBAY_CHAOS_WAIT: longest wait for one figure
	settle    time.Duration // PATCHBAY_CHAOS_SETTLE: longest wait for the final state
	ae        time.Duration // the listeners' anti_entropy, except in nats-down
	strict    bool          // PATCHBAY_CHAOS_STRICT=1: a missed target fails
	cases     map[string]bool
}

func loadOptions(t *testing.T) options {
	o := options{
		outage: envDuration(t, "PATCHBAY_CHAOS_OUTAGE", 60*time.Second), partition: envDuration(t, "PATCHBAY_CHAOS_PARTITION", 30*time.Second),
		wait: envDuration(t, "PATCHBAY_CHAOS_WAIT", 90*time.Second), settle: envDuration(t, "PATCHBAY_CHAOS_SETTLE", 60*time.Second),
		ae: 20 * time.Second, strict: os.Getenv("PATCHBAY_CHAOS_STRICT") == "1", kills: 20,
	}
	if v := os.Getenv("PATCHBAY_CHAOS_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PATCHBAY_CHAOS_KILLS=%q: give a whole number of at least 1", v)
		}
		o.kills = n
	}
	if v := os.Getenv("PATCHBAY_CHAOS_CASES"); v != "" {
		o.cases = map[string]bool{}
		for _, name := range strings.Split(v, ",") {
			o.cases[strings.TrimSpace(name)] = true
		}
	}
	return o
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: give a duration such as 30s", name, v)
	}
	return d
}

func (o options) listenerConfig() listenerConfig {
	// The throttle (one run a second, three back to back) is loose enough
	// that it never delays the suite's changes, which are seconds apart.
	return listenerConfig{antiEntropy: o.ae, minInterval: time.Second, burst: 3}
}

// requireChaos skips unless the suite was asked for, and then insists on
// what it needs: with CI=true a missing prerequisite fails.
func requireChaos(t *testing.T, repo string) {
	if os.Getenv("PATCHBAY_CHAOS") != "1" {
		t.Skip("the chaos suite runs only when asked: `sudo make chaos` (sets PATCHBAY_CHAOS=1; needs root, ip and iptables)")
	}
	need := func(msg string) {
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if os.Geteuid() != 0 {
		need("the chaos suite needs root to create network namespaces: run `sudo make chaos`")
	}
	for _, prog := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(prog); err != nil {
			need(fmt.Sprintf("the chaos suite needs %s: apt-get install -y iproute2 iptables", prog))
		}
	}
	for _, b := range []string{"consul", "nats-server", "patchbay"} {
		if _, err := os.Stat(filepath.Join(repo, "bin", b)); err != nil {
			need(fmt.Sprintf("the chaos suite needs bin/%s: run `make chaos`, which builds it", b))
		}
	}
}

// chaosCase is one fault: it measures and records its figures in r; the
// final-state check follows every case.
type chaosCase struct {
	name string
	run  func(ctx context.Context, t *testing.T, c *cluster, r *results)
}

var chaosCases = []chaosCase{
	{"consul-leader-kill", caseConsulLeaderKill},
	{"resolver-leader-kill", caseResolverLeaderKill},
	{"consul-down", caseConsulDown},
	{"nats-down", caseNATSDown},
	{"partition", casePartition},
	{"listener-kill", caseListenerKill},
	{"lost-event", caseLostEvent},
}

func TestChaos(t *testing.T) {
	repo, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	requireChaos(t, repo)
	opts := loadOptions(t)
	began := time.Now()
	ctx := t.Context()
	r := &results{}
	c := newCluster(t, repo, opts)
	c.up(ctx)
	t.Logf("topology up in %s", time.Since(began).Round(100*time.Millisecond))
	t.Cleanup(func() { // before the topology comes down: cleanups run last first
		var b strings.Builder
		r.write(&b)
		took := time.Since(began)
		t.Logf("chaos results (suite took %s):\n%s", took.Round(time.Second), b.String())
		if err := r.save(repo, took); err != nil {
			t.Error(err)
		}
	})
	t.Run("baseline", func(t *testing.T) { baseline(ctx, t, c, r) })
	for _, cs := range chaosCases {
		if opts.cases != nil && !opts.cases[cs.name] {
			continue
		}
		t.Run(cs.name, func(t *testing.T) {
			if err := c.heal(ctx, t); err != nil {
				t.Fatal(err)
			}
			cs.run(ctx, t, c, r)
			if err := c.finalCheck(ctx); err != nil {
				t.Errorf("final state after %s: %v", cs.name, err)
			}
		})
	}
}

// heal starts a case from a whole cluster: an instance owner an earlier
// case left unregistered gets its listener restarted, the documented way
// out, so that each case's figures are its own.
func (c *cluster) heal(ctx context.Context, t *testing.T) error {
	if poll(ctx, 5*time.Second, func() error { return c.allRegistered(ctx) }) == nil {
		return nil
	}
	for _, h := range c.hosts {
		if err := c.registered(ctx, h); err != nil {
			t.Logf("before the case: %v; restarting its listener", err)
			if err := c.startListener(h, c.opts.listenerConfig()); err != nil {
				return err
			}
		}
	}
	return c.waitSettled(ctx, c.opts.settle)
}

// expect fails the case on a missed timing target in strict mode only.
func (c *cluster) expect(t *testing.T, met bool, what string) {
	if !met && c.opts.strict {
		t.Errorf("target missed (PATCHBAY_CHAOS_STRICT=1): %s", what)
	}
}

// since is d from a to b, or -1 when the wait for b failed.
func since(a, b time.Time, err error) time.Duration {
	if err != nil {
		return -1
	}
	return b.Sub(a)
}

// baseline measures, in the healthy cluster, how long a change takes from
// Consul accepting it to every host's file.
func baseline(ctx context.Context, t *testing.T, c *cluster, r *results) {
	var ds []time.Duration
	for range 3 {
		seq, wrote, err := c.change(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done, err := c.waitMark(ctx, c.hosts, seq, c.opts.wait)
		if err != nil {
			t.Fatalf("healthy cluster: %v", err)
		}
		ds = append(ds, done.Sub(wrote))
	}
	lo, hi := ds[0], ds[0]
	for _, d := range ds {
		lo, hi = min(lo, d), max(hi, d)
	}
	r.add("healthy baseline", fmt.Sprintf("change → all 3 hosts' files %s–%s (3 changes)", secs(lo), secs(hi)), "-", nil)
}
