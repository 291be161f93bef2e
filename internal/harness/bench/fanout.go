package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/internal/events"
)

// The fan-out scenario compares how one change reaches N watchers, each
// way in one process of the harness: Consul's own (N clients, each holding
// the blocking query consul-template holds for `service "provider"`) and
// patchbay's (the resolver, then N NATS subscriptions receiving the
// bindings event). It measures the servers, not the consumers: the time
// until each watcher has the change, and what the change cost Consul and
// the NATS server, read from their processes.

// Fan-out ways.
const (
	wayConsul   = "consul-blocking"
	wayPatchbay = "patchbay-nats"
)

// FanoutFigures are one way's figures at one N. Times are seconds.
type FanoutFigures struct {
	P50     float64 `json:"p50_s"`
	P99     float64 `json:"p99_s"`
	Max     float64 `json:"max_s"`
	Missing int     `json:"missing,omitempty"` // watchers that never had the change within the limit
	// ConsulCPU and NATSCPU are the servers' CPU seconds from the
	// registration until every watcher had it, plus grace; ConsulBytes is
	// what Consul wrote to its sockets meanwhile (/proc/PID/io wchar).
	ConsulCPU   float64 `json:"consul_cpu_s"`
	ConsulBytes int64   `json:"consul_bytes"`
	NATSCPU     float64 `json:"nats_cpu_s"`
}

// Fanout is both ways at one N.
type Fanout struct {
	N    int                       `json:"n"`
	Ways map[string]*FanoutFigures `json:"ways"`
}

// watchers are N watchers of one way: each records when it first saw the
// current marker.
type watchers struct {
	marker atomic.Pointer[[][]byte] // any of them
	seen   []atomic.Int64           // unix nanoseconds, 0 until seen
	armed  atomic.Int64             // watchers ready for the change
}

func newWatchers(n int) *watchers { return &watchers{seen: make([]atomic.Int64, n)} }

// expect resets every watcher to wait for any of markers.
func (w *watchers) expect(markers ...string) {
	for i := range w.seen {
		w.seen[i].Store(0)
	}
	var bs [][]byte
	for _, m := range markers {
		bs = append(bs, []byte(m))
	}
	w.marker.Store(&bs)
}

// saw records that watcher i received body, if it holds the marker.
func (w *watchers) saw(i int, body []byte) {
	m := w.marker.Load()
	if m == nil || w.seen[i].Load() != 0 {
		return
	}
	for _, b := range *m {
		if bytes.Contains(body, b) {
			w.seen[i].Store(time.Now().UnixNano())
			return
		}
	}
}

func (w *watchers) all() bool {
	for i := range w.seen {
		if w.seen[i].Load() == 0 {
			return false
		}
	}
	return true
}

// latencies are each watcher's time from start, and how many never saw it.
func (w *watchers) latencies(start time.Time) (ds []time.Duration, missing int) {
	for i := range w.seen {
		if at := w.seen[i].Load(); at != 0 {
			ds = append(ds, time.Unix(0, at).Sub(start))
		} else {
			missing++
		}
	}
	return ds, missing
}

// fanout measures both ways at N.
func (e *env) fanout(ctx context.Context, n int) (*Fanout, error) {
	res := &Fanout{N: n, Ways: map[string]*FanoutFigures{}}
	quiet, stop, err := e.resolverQuiet()
	if err != nil {
		return nil, err
	}
	defer stop()
	for _, way := range []string{wayConsul, wayPatchbay} {
		e.logf("fan-out, N=%d: starting %d %s watchers", n, n, way)
		f, err := e.fanoutWay(ctx, way, n, quiet)
		if err != nil {
			return nil, err
		}
		res.Ways[way] = f
		if err := e.deregisterLast(ctx, 1); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// resolverQuiet follows the consumer's bindings events; quiet waits until
// none came for Settle, so that a change is measured from a resolver out
// of its debounce (the previous way's provider leaving is a change too).
func (e *env) resolverQuiet() (quiet func(context.Context) error, stop func(), err error) {
	nc, err := nats.Connect(e.natsURL, nats.Name("patchbay bench fan-out settle"))
	if err != nil {
		return nil, nil, fmt.Errorf("bench: fan-out: nats: %w", err)
	}
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	if _, err := nc.Subscribe(fanoutSubject, func(*nats.Msg) { last.Store(time.Now().UnixNano()) }); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bench: fan-out: subscribe: %w", err)
	}
	quiet = func(ctx context.Context) error {
		err := poll(ctx, time.Minute, 20*time.Millisecond, func() bool {
			return time.Since(time.Unix(0, last.Load())) >= e.cfg.Settle
		})
		if errors.Is(err, errTimeout) {
			return nil // a resolver that keeps publishing is measured as it is
		}
		return err
	}
	return quiet, nc.Close, nil
}

// fanoutSubject is the consumer service's bindings subject.
var fanoutSubject = events.BindingsSubject("default", "consumer")

func (e *env) fanoutWay(ctx context.Context, way string, n int, quiet func(context.Context) error) (*FanoutFigures, error) {
	w := newWatchers(n)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	var err error
	if way == wayConsul {
		err = e.consulWatchers(wctx, &wg, w)
	} else {
		var closeAll func()
		closeAll, err = e.natsWatchers(w)
		defer closeAll()
	}
	if err != nil {
		return nil, err
	}
	if err := poll(ctx, time.Minute+time.Duration(n)*10*time.Millisecond, 20*time.Millisecond, func() bool { return w.armed.Load() == int64(n) }); err != nil {
		return nil, fmt.Errorf("bench: fan-out: %d of %d %s watchers ready: %w", w.armed.Load(), n, way, err)
	}
	if err := quiet(ctx); err != nil {
		return nil, err
	}
	e.quietServers(ctx)
	w.expect(markers(way, e.nextProviderPort())...)
	before, err := e.serverUsage()
	if err != nil {
		return nil, err
	}
	e.logf("fan-out, N=%d, %s: one new provider", n, way)
	start := time.Now()
	if _, err := e.register(ctx); err != nil {
		return nil, err
	}
	if err := poll(ctx, 2*time.Minute, 5*time.Millisecond, w.all); err != nil && ctx.Err() != nil {
		return nil, err
	}
	select { // the measurement's window: what the servers do just after the last delivery is the change's
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(grace):
	}
	after, err := e.serverUsage()
	if err != nil {
		return nil, err
	}
	ds, missing := w.latencies(start)
	return &FanoutFigures{
		P50: Percentile(ds, 50).Seconds(), P99: Percentile(ds, 99).Seconds(), Max: Percentile(ds, 100).Seconds(), Missing: missing,
		ConsulCPU: (after.consulCPU - before.consulCPU).Seconds(), ConsulBytes: after.consulBytes - before.consulBytes,
		NATSCPU: (after.natsCPU - before.natsCPU).Seconds(),
	}, nil
}

// markers are what a watcher's message holds once the provider on port is
// in it: consul-template's query answers the catalog entry (indented by a
// -dev agent), the event carries the binding's value.
func markers(way string, port int) []string {
	if way == wayConsul {
		return []string{fmt.Sprintf(`"Port":%d,`, port), fmt.Sprintf(`"Port": %d,`, port)}
	}
	return []string{fmt.Sprintf("127.0.0.1:%d", port)}
}

// nextProviderPort is the port register gives the next provider.
func (e *env) nextProviderPort() int { return 20000 + e.seq + 1 }

// consulWatchers starts N clients in this process, each with its own
// connection holding consul-template's blocking query: the health of the
// service, passing only, index= the last answer's.
func (e *env) consulWatchers(ctx context.Context, wg *sync.WaitGroup, w *watchers) error {
	n := len(w.seen)
	tr := &http.Transport{MaxIdleConnsPerHost: n + 1, IdleConnTimeout: time.Minute, DisableCompression: true}
	client := &http.Client{Transport: tr}
	url := "http://" + e.consulAddr + "/v1/health/service/provider?passing=1"
	for i := range n {
		wg.Go(func() {
			defer tr.CloseIdleConnections()
			var index string
			for ctx.Err() == nil {
				u := url
				if index != "" {
					u += "&wait=5m&index=" + index
				}
				body, next, err := get(ctx, client, u)
				if err != nil {
					if ctx.Err() == nil {
						fmt.Fprintf(os.Stderr, "bench: fan-out watcher %d: %v\n", i, err)
					}
					return
				}
				w.saw(i, body)
				if index == "" { // from now on it holds a blocking query
					w.armed.Add(1)
				}
				index = next
			}
		})
	}
	return nil
}

// get reads one answer and its X-Consul-Index.
func get(ctx context.Context, c *http.Client, url string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer func() { _ = resp.Body.Close() }() // read to the end below
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return body, resp.Header.Get("X-Consul-Index"), nil
}

// natsWatchers connects N clients, each with its own connection, to the
// bindings subject of the consumer service.
func (e *env) natsWatchers(w *watchers) (closeAll func(), err error) {
	var conns []*nats.Conn
	closeAll = func() {
		for _, nc := range conns {
			nc.Close()
		}
	}
	for i := range w.seen {
		nc, err := nats.Connect(e.natsURL, nats.Name("patchbay bench fan-out "+strconv.Itoa(i)))
		if err != nil {
			return closeAll, fmt.Errorf("bench: fan-out: nats: %w", err)
		}
		conns = append(conns, nc)
		if _, err := nc.Subscribe(fanoutSubject, func(m *nats.Msg) { w.saw(i, m.Data) }); err != nil {
			return closeAll, fmt.Errorf("bench: fan-out: subscribe: %w", err)
		}
		if err := nc.Flush(); err != nil { // the server has the subscription
			return closeAll, fmt.Errorf("bench: fan-out: nats: %w", err)
		}
		w.armed.Add(1)
	}
	return closeAll, nil
}

// usage is what the servers had used at one moment.
type usage struct {
	consulCPU, natsCPU time.Duration
	consulBytes        int64
}

// serverUsage reads the Consul and NATS server processes; a server the
// harness did not start counts zero.
func (e *env) serverUsage() (usage, error) {
	var u usage
	var err error
	if e.consul != nil {
		if u.consulCPU, err = cpuTime(e.consul.pid()); err != nil {
			return u, err
		}
		if u.consulBytes, err = writtenBytes(e.consul.pid()); err != nil {
			return u, err
		}
	}
	if e.nats != nil {
		if u.natsCPU, err = cpuTime(e.nats.pid()); err != nil {
			return u, err
		}
	}
	return u, nil
}

// quietServers waits, at most 30 s, until Consul and NATS use less than
// 5 % of a CPU over 200 ms: watchers just started keep Consul busy
// answering their first queries, which is not the change's cost.
func (e *env) quietServers(ctx context.Context) {
	last, _ := e.serverUsage()
	at := time.Now()
	_ = poll(ctx, 30*time.Second, 200*time.Millisecond, func() bool {
		now, err := e.serverUsage()
		if err != nil {
			return true
		}
		busy := (now.consulCPU - last.consulCPU) + (now.natsCPU - last.natsCPU)
		quiet := busy < time.Since(at)/20
		last, at = now, time.Now()
		return quiet
	})
}

// writtenBytes is what a process has written through write(2) and its
// kin, sockets included: /proc/PID/io's wchar.
func writtenBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: io of %d: %w", pid, err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("wchar:")); ok {
			return strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, fmt.Errorf("bench: io of %d: no wchar", pid)
}

// startNATSProc runs nats-server on a free loopback port, so that its CPU
// is its own and not the harness's.
func startNATSProc(ctx context.Context, bin, dir string) (*proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	logPath := dir + "/logs/nats-server.log"
	p, err := startProc("nats-server", dir, logPath, nil, bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	err = poll(ctx, 10*time.Second, 20*time.Millisecond, func() bool {
		if ok, _ := p.exited(); ok {
			return true
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close() // a probe
		}
		return err == nil
	})
	if ok, werr := p.exited(); ok {
		return nil, "", fmt.Errorf("bench: nats-server exited (%w); see %s", werr, logPath)
	}
	if err != nil {
		p.stop(5 * time.Second)
		return nil, "", fmt.Errorf("bench: nats-server at %s: %w", addr, err)
	}
	return p, "nats://" + addr, nil
}
