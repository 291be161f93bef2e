package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// TestHarness runs every scenario at a tiny size against a real Consul
// agent (started by the harness from the consul binary), consul-template
// and patchbay built from this tree.
func TestHarness(t *testing.T) {
	testcluster.RequireConsulBinary(t)
	consul, err := exec.LookPath("consul")
	if err != nil {
		t.Fatal(err)
	}
	patchbay, consulTemplate := binaries(t)
	floorBin := buildFloor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Patchbay: patchbay, ConsulTemplate: consulTemplate, Consul: consul, NATSServer: natsServer(t), Floor: floorBin,
		Dir: t.TempDir(), CostChanges: 2,
		Sizes: []int{2}, IdleN: 2, Idle: time.Second,
		// The burst gets fleets of its own: a listener that has run three
		// times back to back (start, change, burst) waits 30 s for a fourth.
		BurstN: 3, Burst: 2,
		SimSizes: []int{3}, Fanout: []int{3}, Settle: 300 * time.Millisecond,
		Progress: t.Output(),
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(res.One) != 1 || res.Alone == nil || res.Burst == nil || res.Idle == nil || len(res.Sim) != 1 || len(res.Fanout) != 1 {
		t.Fatalf("scenarios missing from the results: %+v", res)
	}
	for _, name := range []string{ctName, pbName} {
		f := res.One[0].Fleets[name]
		if f.Missing != 0 || f.P99 <= 0 || f.Requests == 0 {
			t.Errorf("one new provider, %s: %d files never held it, p99 %.3fs, %d requests; want all, > 0, > 0", name, f.Missing, f.P99, f.Requests)
		}
		if f.CPUMsPerConsumer <= 0 || f.SwitchesPerConsumer <= 0 {
			t.Errorf("one new provider, %s: %.2f CPU ms and %.0f context switches per consumer, want both > 0", name, f.CPUMsPerConsumer, f.SwitchesPerConsumer)
		}
		if idle := res.Idle.Fleets[name]; idle.RSSMeanMB <= 0 {
			t.Errorf("idle, %s: RSS %.1f MB, want > 0", name, idle.RSSMeanMB)
		}
	}
	for name, f := range res.Alone.Fleets {
		if f.Missing != 0 || f.P99 <= 0 {
			t.Errorf("one new provider alone, %s: %d files never held it, p99 %.3fs; want all, > 0", name, f.Missing, f.P99)
		}
	}
	if len(res.Alone.Fleets) != 2 {
		t.Errorf("one new provider alone: figures of %d fleets, want 2", len(res.Alone.Fleets))
	}
	// Each consul-template process holds one blocking query on the service,
	// and issues it again once the query returned the new provider.
	if b := res.One[0].Fleets[ctName].Classes[Blocking.String()]; b < 2 {
		t.Errorf("one new provider: consul-template made %d blocking reads, want at least one per process (2)", b)
	}
	for name, f := range res.Burst.Fleets {
		if f.Missing != 0 || f.ReloadsMean < 1 {
			t.Errorf("burst, %s: %d registrations never rendered, %.1f reloads per consumer; want none, at least 1", name, f.Missing, f.ReloadsMean)
		}
	}
	// Events carry the binding: the simulated listeners apply the change
	// without a Consul request (their start-up reads came before).
	if s := res.Sim[0].Fleets[simulated.String()]; s.Missing != 0 || s.Requests != 0 {
		t.Errorf("fleet simulation: %d files never held the change, %d Consul requests; want none, none", s.Missing, s.Requests)
	}
	// The burst's providers are gone again: the simulation's binding holds
	// the first provider, the one-new-provider one, one per fleet alone and
	// its own.
	if got := res.Sim[0].Providers; got != 5 {
		t.Errorf("fleet simulation: a binding of %d providers, want 5 (the burst's 2 deregistered)", got)
	}
	checkFanout(t, res.Fanout[0])
	checkCost(t, res.Cost)
	var out bytes.Buffer
	res.Table(&out, "1s for 2s")
	for _, want := range []string{"fan-out, N=3 watchers", "bytes Consul wrote", "| scenario | consul-template | patchbay | ratio |", "cost of one change, one consumer each, mean of 2 changes", "the floor consumer", "one new provider, N=2", "each fleet alone", "reloads per consumer", "fleet simulation, 3 listeners in one process, a binding of 5 providers"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	t.Log("\n" + out.String())
}

// checkCost: each of the three consumers spent CPU and switched context
// on every change it applied.
func checkCost(t *testing.T, c *Cost) {
	t.Helper()
	if c == nil || c.Changes != 2 {
		t.Fatalf("cost row: %+v, want 2 changes", c)
	}
	for _, k := range []kind{consulTemplate, patchbay, floor} {
		if c.CPUMs[k.String()] <= 0 || c.CPUMsMedian[k.String()] <= 0 || c.Switches[k.String()] <= 0 {
			t.Errorf("cost row, %s: %.2f CPU ms (median %.2f) and %.0f switches per change, want all > 0", k, c.CPUMs[k.String()], c.CPUMsMedian[k.String()], c.Switches[k.String()])
		}
	}
}

// buildFloor builds cmd/floor, the cost row's floor consumer.
func buildFloor(t *testing.T) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	bin := filepath.Join(t.TempDir(), "floor")
	build := exec.Command("go", "build", "-o", bin, "./cmd/floor")
	build.Dir = filepath.Dir(self)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/floor: %v\n%s", err, out)
	}
	return bin
}

// checkFanout: every watcher of both ways had the change; Consul's way
// cost Consul bytes for each watcher's answer, patchbay's cost the NATS
// server.
func checkFanout(t *testing.T, f Fanout) {
	t.Helper()
	for way, fig := range f.Ways {
		if fig.Missing != 0 || fig.P99 <= 0 {
			t.Errorf("fan-out, %s: %d watchers never had it, p99 %.3fs; want all, > 0", way, fig.Missing, fig.P99)
		}
	}
	c, p := f.Ways[wayConsul], f.Ways[wayPatchbay]
	if c == nil || p == nil {
		t.Fatalf("fan-out: ways %v, want both", f.Ways)
	}
	if c.ConsulBytes <= 0 || c.ConsulCPU < 0 || p.NATSCPU < 0 {
		t.Errorf("fan-out: Consul wrote %d bytes for its watchers (want > 0), CPU %.3f s, NATS CPU %.3f s", c.ConsulBytes, c.ConsulCPU, p.NATSCPU)
	}
}

// natsServer is bin/nats-server, or one on PATH, run by the harness so
// that its CPU is measured; without either, the harness embeds one.
func natsServer(t *testing.T) string {
	_, self, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(self), "..", "..", "bin", "nats-server")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	t.Log("no bin/nats-server or nats-server on PATH: the harness embeds one, and NATS CPU reads 0")
	return ""
}

// binaries builds patchbay from this tree into a temporary directory, so
// the test measures the code under test, and returns it with
// bin/consul-template, built from tools/consul-template when missing.
func binaries(t *testing.T) (patchbay, consulTemplate string) {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..", "..")
	patchbay = filepath.Join(t.TempDir(), "patchbay")
	build := exec.Command("go", "build", "-o", patchbay, "./cmd/patchbay")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/patchbay: %v\n%s", err, out)
	}
	consulTemplate = filepath.Join(root, "bin", "consul-template")
	if _, err := os.Stat(consulTemplate); err == nil {
		return patchbay, consulTemplate
	}
	t.Log("building bin/consul-template from tools/consul-template (a minute the first time)")
	build = exec.Command("go", "-C", "tools/consul-template", "build", "-o", "../../bin/consul-template", "github.com/hashicorp/consul-template")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		msg := "consul-template cannot be built (make bin/consul-template): " + err.Error() + "\n" + string(out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return patchbay, consulTemplate
}
