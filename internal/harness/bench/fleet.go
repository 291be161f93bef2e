package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/patchbay/patchbay/registry"
)

// kind is what a fleet runs.
type kind int

const (
	consulTemplate     kind = iota // consul-template, no wait
	consulTemplateWait             // consul-template with wait { min = "1s" max = "10s" }
	patchbay                       // patchbay listen, default settings
	simulated                      // patchbay listeners in the harness's process
	floor                          // cmd/floor: the least an event-driven consumer does
)

var kindNames = map[kind]string{consulTemplate: "consul-template", consulTemplateWait: "consul-template-wait", patchbay: "patchbay", simulated: "patchbay-simulated", floor: "floor"}

func (k kind) String() string { return kindNames[k] }

// fleet is N consumers of one kind, each a process rendering its own file,
// all reaching Consul through the kind's counting proxy.
type fleet struct {
	kind  kind
	proxy *Proxy
	procs []*proc
	files []string
}

// startFleet starts n consumers of kind k in dir and waits until each
// file holds every provider registered so far.
func (e *env) startFleet(ctx context.Context, k kind, n int, tag string) (*fleet, error) {
	f := &fleet{kind: k, proxy: e.proxies[k]}
	for i := range n {
		dir := filepath.Join(e.dir, tag, k.String(), strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			f.stop()
			return nil, fmt.Errorf("bench: %w", err)
		}
		out := filepath.Join(dir, outputName)
		if err := e.obs.add(out); err != nil {
			f.stop()
			return nil, err
		}
		f.files = append(f.files, out)
		argv, err := e.member(k, dir, fmt.Sprintf("bench-%s-%d", tag, i), out)
		if err != nil {
			f.stop()
			return nil, err
		}
		p, err := startProc(fmt.Sprintf("%s %s/%d", k, tag, i), dir, filepath.Join(dir, "log"), []string{registry.SharedAgentsEnv + "=" + agentNode}, argv...)
		if err != nil {
			f.stop()
			return nil, err
		}
		f.procs = append(f.procs, p)
	}
	if k == floor {
		return f, nil // it renders nothing until the next event
	}
	limit := 60*time.Second + time.Duration(n)*time.Second
	if err := e.obs.awaitAll(ctx, limit, f.files, e.providers...); err != nil {
		f.stop()
		return nil, fmt.Errorf("bench: %d %s consumers did not render every provider: %w (logs in %s)", n, k, err, filepath.Join(e.dir, tag, k.String()))
	}
	return f, nil
}

// member writes a consumer's configuration and returns its command line.
func (e *env) member(k kind, dir, node, out string) ([]string, error) {
	if k == patchbay {
		cfg := fmt.Sprintf("consul-addr: %s\nnats-url: %s\nnode: %s\nroot: %s\nstate_dir: %s\ncontrol: \"off\"\n%s\nservices:\n  - service: consumer\n",
			e.proxies[k].Addr, e.natsURL, node, dir, filepath.Join(dir, "state"), e.listenerExtras())
		path := filepath.Join(dir, "listener.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		return []string{e.cfg.Patchbay, "listen", "--config", path}, nil
	}
	if k == floor {
		return []string{e.cfg.Floor, "-nats-url", e.natsURL, "-out", out}, nil
	}
	wait := ""
	if k == consulTemplateWait {
		wait = "  wait {\n    min = \"1s\"\n    max = \"10s\"\n  }\n"
	}
	cfg := fmt.Sprintf("consul {\n  address = %q\n}\nlog_level = \"warn\"\ntemplate {\n  source = %q\n  destination = %q\n%s}\n",
		e.proxies[k].Addr, e.ctTemplate, out, wait)
	path := filepath.Join(dir, "consul-template.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return []string{e.cfg.ConsulTemplate, "-config", path}, nil
}

// stop ends the fleet's processes; it returns how many ignored SIGINT
// for 10 s.
func (f *fleet) stop() int {
	killed := stopAll(f.procs, 10*time.Second)
	f.procs = nil
	return killed
}

// register makes this process the owner of one more provider instance
// (registry.Client.Register, the code behind `patchbay register`, directly
// against Consul) and returns the line consumers will render for it,
// awaited from now. In-process owners make a burst of registrations a
// burst: a hundred `patchbay register` processes starting at once on two
// cores take tens of seconds, which turns the burst into a trickle.
func (e *env) register(ctx context.Context) (*target, error) {
	ts, err := e.registerAll(ctx, 1)
	if err != nil {
		return nil, err
	}
	return ts[0], nil
}

// registerAll registers count providers at once, as a deployment that
// starts them on many hosts does, and returns their lines, each awaited
// from the moment the registrations began.
func (e *env) registerAll(ctx context.Context, count int) ([]*target, error) {
	specs := make([]registry.InstanceSpec, count)
	ts := make([]*target, count)
	for i := range count {
		e.seq++
		port := 20000 + e.seq
		specs[i] = registry.InstanceSpec{Federation: "default", Service: "provider", Node: fmt.Sprintf("provider-%d", e.seq), Address: "127.0.0.1", Port: port}
		ts[i] = e.obs.expect(fmt.Sprintf("127.0.0.1:%d\n", port), time.Now())
	}
	owners := make([]*registry.Owner, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i := range count {
		// A long owner TTL: on a loaded machine a 3 s TTL is missed now and
		// then, and a flapping provider would be measured as many changes.
		wg.Go(func() {
			owners[i], errs[i] = e.reg.Register(e.ownerCtx, specs[i], registry.WithOwnerTTL(30*time.Second))
		})
	}
	wg.Wait()
	for i := range count {
		if errs[i] != nil {
			e.obs.drop(ts[i])
			continue
		}
		e.providers = append(e.providers, ts[i])
		e.owners = append(e.owners, owners[i])
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ts, ctx.Err()
}

// closeOwners deregisters every provider instance, in parallel.
func (e *env) closeOwners() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, o := range e.owners {
		wg.Go(func() { _ = o.Close(ctx) })
	}
	wg.Wait()
	e.owners = nil
}

// deregisterLast deregisters the count providers registered last, in
// parallel, so that later scenarios start from the registry the earlier
// ones had: a burst's hundred providers would otherwise make every later
// binding a hundred lines long, and the fleet simulation after it would
// measure decoding that binding 5,000 times rather than the fan-out.
func (e *env) deregisterLast(ctx context.Context, count int) error {
	keep := len(e.owners) - min(count, len(e.owners))
	gone := e.owners[keep:]
	errs := make([]error, len(gone))
	var wg sync.WaitGroup
	for i, o := range gone {
		wg.Go(func() { errs[i] = o.Close(ctx) })
	}
	wg.Wait()
	for _, t := range e.providers[keep:] {
		e.obs.drop(t)
	}
	e.owners, e.providers = e.owners[:keep], e.providers[:keep]
	return errors.Join(errs...)
}

// quiet waits until none of files has been rewritten for d, at most limit.
func (e *env) quiet(ctx context.Context, files []string, d, limit time.Duration) error {
	last, since := e.obs.totalRewrites(files), time.Now()
	return poll(ctx, limit, 20*time.Millisecond, func() bool {
		if n := e.obs.totalRewrites(files); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= d
	})
}
