package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// restartListeners gives every host lc and waits until all are settled.
func (c *cluster) restartListeners(ctx context.Context, lc listenerConfig) error {
	for _, h := range c.hosts {
		if err := c.startListener(h, lc); err != nil {
			return err
		}
	}
	return c.waitSettled(ctx, c.opts.settle)
}

// caseNATSDown: both NATS servers stopped for the outage, then started;
// events must flow again within 2 s. Anti-entropy is set to 10m here, so a
// change can only arrive by its event.
func caseNATSDown(ctx context.Context, t *testing.T, c *cluster, r *results) {
	name := fmt.Sprintf("NATS down %s, then back", secs(c.opts.outage))
	long := c.opts.listenerConfig()
	long.antiEntropy = 10 * time.Minute
	if err := c.restartListeners(ctx, long); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.restartListeners(ctx, c.opts.listenerConfig()); err != nil {
			t.Error(err)
		}
	}()
	for _, p := range c.natsPr {
		if err := p.stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := hold(ctx, c.opts.outage); err != nil {
		t.Fatal(err)
	}
	for _, p := range c.natsPr {
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.waitNATS(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	made, arrived := c.changesUntilDelivered(ctx, back)
	var flow, reach time.Duration = -1, -1
	if len(arrived) == len(c.hosts) {
		for _, h := range c.hosts {
			flow = max(flow, made[arrived[h.name].seq].Sub(back))
			reach = max(reach, arrived[h.name].at.Sub(back))
		}
	}
	met := r.timed(name, "events flow again: the first change each host got by its event was made", flow, 2*time.Second, c.opts.wait)
	c.expect(t, met, "events after a NATS outage")
	r.timed(name, "that change in every file", reach, 2*time.Second+3*time.Second, c.opts.wait)
}

type arrival struct {
	seq int
	at  time.Time
}

// changesUntilDelivered makes a change every 1.5 s (longer than the
// listeners' quiet window, so no two coalesce) until every host rendered
// one made after from, or the wait runs out. It returns when each change
// was made and the first such change each host rendered.
func (c *cluster) changesUntilDelivered(ctx context.Context, from time.Time) (map[int]time.Time, map[string]arrival) {
	made := map[int]time.Time{}
	first := -1
	arrived := map[string]arrival{}
	next := time.Now()
	_ = poll(ctx, c.opts.wait, func() error {
		if now := time.Now(); !now.Before(next) {
			next = now.Add(1500 * time.Millisecond)
			seq, at, err := c.change(ctx)
			if err == nil {
				made[seq] = at
				if first < 0 {
					first = seq
				}
			}
		}
		for _, h := range c.hosts {
			st, err := readFile(h)
			if _, ok := arrived[h.name]; ok || err != nil || first < 0 {
				continue
			}
			if seq := markSeq(st.mark); seq >= first {
				arrived[h.name] = arrival{seq, time.Now()}
			}
		}
		if len(arrived) < len(c.hosts) {
			return fmt.Errorf("%d of %d hosts got a change made after NATS came back", len(arrived), len(c.hosts))
		}
		return nil
	})
	return made, arrived
}

// casePartition: one host's link down for the partition; the others keep
// converging, and the host converges once it is back.
func casePartition(ctx context.Context, t *testing.T, c *cluster, r *results) {
	name := fmt.Sprintf("one host partitioned %s", secs(c.opts.partition))
	h, others := c.hosts[0], c.hosts[1:]
	if err := setLink(h.name, false); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	healed := false
	defer func() {
		if !healed {
			_ = setLink(h.name, true)
		}
	}()
	seq, wrote, err := c.change(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done, err := c.waitMark(ctx, others, seq, c.opts.wait)
	met := r.timed(name, "during it, a change → the other hosts' files", since(wrote, done, err), 3*time.Second, c.opts.wait)
	c.expect(t, met, "other hosts during a partition")
	if err := hold(ctx, time.Until(cut.Add(c.opts.partition))); err != nil {
		t.Fatal(err)
	}
	if err := setLink(h.name, true); err != nil {
		t.Fatal(err)
	}
	healed = true
	back := time.Now()
	seen := firstTimes(ctx, c.opts.wait, map[string]func() error{
		"files":      c.filesMatch,
		"registered": func() error { return c.registered(ctx, h) },
	})
	aeMax := c.opts.ae + c.opts.ae/5 + 2*time.Second
	met = r.timed(name, "after it, the host's files converged", sinceSeen(back, seen, "files"), aeMax, c.opts.wait)
	c.expect(t, met, "partitioned host converging")
	r.timed(name, "after it, the host's instance registered again", sinceSeen(back, seen, "registered"), 5*time.Second, c.opts.wait)
}

// caseLostEvent: NATS blocked for one host only while a change is made; the
// host must converge by anti-entropy.
func caseLostEvent(ctx context.Context, t *testing.T, c *cluster, r *results) {
	const name = "a lost event"
	h := c.hosts[1]
	if err := blockPort(h.name, 4222, true); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := blockPort(h.name, 4222, false); err != nil {
			t.Error(err)
		}
	}()
	logged := fileSize(h.listener.log)
	seq, wrote, err := c.change(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done, err := c.waitMark(ctx, []*host{h}, seq, c.opts.wait)
	aeMax := c.opts.ae + c.opts.ae/5 + 2*time.Second
	met := r.timed(name, fmt.Sprintf("the host without NATS converged by anti-entropy (%s)", c.opts.ae), since(wrote, done, err), aeMax, c.opts.wait)
	c.expect(t, met, "lost event")
	// Only anti-entropy may have brought the change: otherwise the event
	// was not lost and the figure says nothing.
	if err == nil && !strings.Contains(readFrom(h.listener.log, logged), "anti-entropy: Consul differs") {
		t.Errorf("%s converged without anti-entropy: its event got through the firewall", h.name)
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom is a file's content from offset on.
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || offset > int64(len(b)) {
		return ""
	}
	return string(b[offset:])
}

// caseListenerKill: kill -9 one listener every 2 s, each time while its
// run checks a staged file when it can, then let it run.
func caseListenerKill(ctx context.Context, t *testing.T, c *cluster, r *results) {
	name := fmt.Sprintf("listener kill -9 mid-run ×%d", c.opts.kills)
	h := c.hosts[2]
	lc := c.opts.listenerConfig()
	lc.minInterval, lc.burst = 5*time.Second, 3
	if err := c.publishApp(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := c.startListener(h, lc); err != nil {
		t.Fatal(err)
	}
	if err := c.waitSettled(ctx, c.opts.settle); err != nil {
		t.Fatal(err)
	}
	checks := filepath.Join(h.root, "checks.log")
	checks0, runs0 := countLines(checks), countLines(filepath.Join(h.dir, "runs.log"))
	began := time.Now()
	hits := 0
	for i := range c.opts.kills {
		round := began.Add(time.Duration(i+1) * 2 * time.Second)
		if _, _, err := c.change(ctx); err != nil {
			t.Fatal(err)
		}
		// A check starting (it logs a line, then sleeps a second with the
		// staged file in place) is the moment to kill.
		before := countLines(checks)
		if poll(ctx, time.Until(round)-100*time.Millisecond, func() error {
			if countLines(checks) > before && stagedIn(h) == nil {
				return nil
			}
			return errors.New("no check running")
		}) == nil {
			hits++
		}
		if err := h.listener.kill(); err != nil {
			t.Fatal(err)
		}
		if err := h.listener.start(); err != nil {
			t.Fatal(err)
		}
		_ = hold(ctx, time.Until(round))
	}
	window := time.Since(began)
	started := countLines(checks) - checks0
	runs := countLines(filepath.Join(h.dir, "runs.log")) - runs0
	// An uninterrupted listener runs once per change (the throttle holds
	// no healthy stream), so the restarts must not add runs beyond that;
	// the throttle itself, which holds each restart's first run, is proven
	// on a virtual clock by the listener's TestRestartLoopNeverOutrunsUninterrupted.
	allowed := c.opts.kills
	r.add(name, fmt.Sprintf("%d kills in %s, %d during a check: %d runs reached the check, %d provisions ran", c.opts.kills, secs(window), hits, started, runs),
		fmt.Sprintf("≤ %d runs (an uninterrupted listener: one per change)", allowed), yes(started <= allowed))
	c.expect(t, started <= allowed, "runs under restarts")
	if err := c.publishApp(ctx, false); err != nil {
		t.Error(err)
	}
	if err := c.startListener(h, c.opts.listenerConfig()); err != nil {
		t.Error(err)
	}
}

// stagedIn is nil once h has a staged file.
func stagedIn(h *host) error {
	entries, err := os.ReadDir(filepath.Dir(h.file()))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if len(e.Name()) > 1 && e.Name()[0] == '.' {
			return nil
		}
	}
	return fmt.Errorf("no staged file")
}

func countLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	for s := bufio.NewScanner(f); s.Scan(); {
		n++
	}
	return n
}
