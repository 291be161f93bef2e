// Command bench is `make bench`: patchbay's listener fleet side by side
// with consul-template on one Consul, and a fleet simulation. See
// docs/performance.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/patchbay/patchbay/internal/harness/bench"
)

func main() {
	os.Exit(run())
}

func run() int {
	var cfg bench.Config
	var sizes, sim, fanout, jsonOut, cpuProfile string
	flag.StringVar(&cfg.Patchbay, "patchbay", "bin/patchbay", "patchbay binary (make build)")
	flag.StringVar(&cfg.ConsulTemplate, "consul-template", "bin/consul-template", "consul-template binary (make bin/consul-template)")
	flag.StringVar(&cfg.Consul, "consul", "bin/consul", "consul binary (make bin/consul)")
	flag.StringVar(&cfg.Floor, "floor", "bin/bench-floor", "the floor consumer of the cost row (make bin/bench-floor)")
	flag.IntVar(&cfg.CostChanges, "cost-changes", 20, "changes of the cost row: one consul-template, one patchbay listener and the floor consumer, nothing else (0 skips)")
	flag.StringVar(&cfg.NATSServer, "nats-server", "bin/nats-server", "nats-server binary, run as its own process so that its CPU can be measured (\"\" embeds one in the harness)")
	flag.StringVar(&cfg.Dir, "dir", "", "work directory, kept (default: a temporary one, removed)")
	flag.StringVar(&cfg.SimDir, "sim-dir", defaultSimDir(), "where simulated listeners render: each simulated host would fsync its own disk")
	flag.StringVar(&sizes, "sizes", "10,50,100", "fleet sizes N of the one-new-provider scenario")
	flag.IntVar(&cfg.PeriodicN, "periodic-n", 50, "N of the one-change-every-interval scenario (0 skips)")
	flag.DurationVar(&cfg.Interval, "interval", 5*time.Second, "between the periodic changes")
	flag.DurationVar(&cfg.Duration, "duration", 30*time.Second, "of the periodic changes")
	flag.IntVar(&cfg.IdleN, "idle-n", 100, "N of the idle scenario (0 skips)")
	flag.DurationVar(&cfg.Idle, "idle", time.Minute, "idle measurement")
	flag.IntVar(&cfg.BurstN, "burst-n", 100, "N of the burst scenario (0 skips)")
	flag.IntVar(&cfg.Burst, "burst", 100, "registrations in the burst")
	flag.IntVar(&cfg.InstancesN, "instances-n", 30, "N of the scenarios of \"patchbay register\" processes (0 skips)")
	flag.IntVar(&cfg.Instances, "instances", 6, "\"patchbay register\" processes, one every -interval")
	flag.IntVar(&cfg.RegisterBurst, "register-burst", 60, "\"patchbay register\" processes started at once (0 skips)")
	flag.StringVar(&sim, "sim", "1000,5000", "listeners of the fleet simulation (\"\" skips)")
	flag.StringVar(&fanout, "fanout", "1000,5000", "watchers of the fan-out scenario, Consul's blocking queries against patchbay's resolver and NATS (\"\" skips)")
	flag.StringVar(&jsonOut, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the harness, fleet simulation included, to this file (go tool pprof)")
	flag.Parse()
	var err error
	if cfg.Sizes, err = ints(sizes); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -sizes:", err)
		return 1
	}
	if cfg.SimSizes, err = ints(sim); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -sim:", err)
		return 1
	}
	if cfg.Fanout, err = ints(fanout); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -fanout:", err)
		return 1
	}
	cfg.Progress = os.Stderr
	raiseFileLimit()
	if cpuProfile != "" {
		stopProfile, err := startCPUProfile(cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: -cpuprofile:", err)
			return 1
		}
		defer stopProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, cfg)
	if res != nil {
		res.Table(os.Stdout, fmt.Sprintf("%s for %s", cfg.Interval, cfg.Duration))
		if jsonOut != "" {
			if werr := writeJSON(jsonOut, res); werr != nil {
				fmt.Fprintln(os.Stderr, werr)
				return 2
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

// startCPUProfile profiles this process into path until the returned
// function is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close() // the profiler error is the one to report
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil // a short profile shows itself when read
}

// raiseFileLimit lets the fleet simulation hold three descriptors per
// concurrent Consul request of thousands of listeners (client, proxy in,
// proxy out). Best effort: raising the hard limit needs root.
func raiseFileLimit() {
	const want = 1 << 18
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur >= want {
		return
	}
	l.Cur, l.Max = want, max(l.Max, want)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		fmt.Fprintf(os.Stderr, "bench: cannot raise the open files limit (%v): the fleet simulation may run out of descriptors\n", err)
	}
}

func ints(s string) ([]int, error) {
	var ns []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// defaultSimDir is tmpfs when there is one: thousands of simulated hosts
// installing files on one disk would measure that disk's fsyncs.
func defaultSimDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return ""
}

func writeJSON(path string, res *bench.Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
