package console

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/bench"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/internal/redact"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
)

var fixtureDocs = []string{
	"id: api\nunique: true\nprovides: {API_URL: \"http://{HOST}:{PORT}\"}\n",
	"id: web\npublic: true\nrequires: {API_URL: \"{API_URL}\"}\nprovides: {WEB_URL: \"http://{HOST}:{PORT}\"}\n",
	"id: www\nrequires: {API_URL: \"{API_URL}\", SEARCH_URL: \"{MISSING_URL}\", DATABASE_URL: \"{DB_URL}\"}\nrollout: {group: www}\n",
	"id: lb\nrequires:\n  ROUTES: {key: \"*_URL\", select: all, public: true, region: any, optional: true}\n",
}

// consoleFixture is a real Consul with the fixture published, and a
// console running against it behind a test HTTP server on loopback.
type consoleFixture struct {
	reg *registry.Client
	srv *httptest.Server
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newConsoleFixture(t *testing.T, opts ...Option) *consoleFixture {
	t.Helper()
	consul := testcluster.StartConsul(t)
	reg, err := registry.New(registry.WithAddress(consul.Addr), registry.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, doc := range fixtureDocs {
		m, err := manifest.Parse("test.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.SetDatastore(ctx, "default", "DB_URL", "postgres://secret@db/app"); err != nil {
		t.Fatal(err)
	}
	c := New(reg, append([]Option{WithLogger(discard()), WithRefresh(200 * time.Millisecond)}, opts...)...)
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.Run(runCtx) })
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(func() { cancel(); wg.Wait(); srv.Close() }) // Run's end ends the event streams
	return &consoleFixture{reg: reg, srv: srv}
}

func (f *consoleFixture) register(t *testing.T, service, node string, port int) {
	t.Helper()
	o, err := f.reg.Register(context.Background(), registry.InstanceSpec{Federation: "default", Service: service, Node: node, Address: "127.0.0.1", Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	if err := o.WaitRegistered(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// state polls /api/state until ok holds.
func (f *consoleFixture) state(t *testing.T, ok func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st State
		if resp, err := http.Get(f.srv.URL + "/api/state"); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if ok(st) {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("state never as expected: %+v", st)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func TestState(t *testing.T) {
	f := newConsoleFixture(t)
	f.register(t, "api", "n1", 8001)
	st := f.state(t, func(st State) bool {
		return len(st.Federations) == 1 && len(st.Federations[0].Services) == 4 && len(st.Federations[0].Services[0].Instances) == 1
	})
	fed := st.Federations[0]
	if !strings.HasPrefix(fed.Graph, "digraph") || !strings.Contains(fed.Graph, "MISSING_URL") || !strings.Contains(fed.Graph, "datastore") {
		t.Fatalf("graph:\n%.400s", fed.Graph)
	}
	www := fed.Services[3]
	var search, db *Var
	for i, v := range www.Bindings[0].Vars {
		switch v.Name {
		case "SEARCH_URL":
			search = &www.Bindings[0].Vars[i]
		case "DATABASE_URL":
			db = &www.Bindings[0].Vars[i]
		}
	}
	if search == nil || search.Resolved || !strings.Contains(search.Why, "MISSING_URL") {
		t.Fatalf("SEARCH_URL: %+v", search)
	}
	if db == nil || !db.Resolved || strings.Contains(db.Value, "secret") {
		t.Fatalf("DATABASE_URL must show its datastore, never its value: %+v", db)
	}
	resp, err := http.Get(f.srv.URL + "/api/explain?service=www&var=SEARCH_URL")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "MISSING_URL") {
		t.Fatalf("explain: %s %s", resp.Status, body)
	}
}

// /api/explain follows the one redaction policy, as /api/state and the
// CLI do: a datastore value is masked in the result, the winners and the
// candidates.
func TestExplainMasksDatastoreValues(t *testing.T) {
	f := newConsoleFixture(t)
	f.state(t, func(st State) bool { return len(st.Federations) == 1 })
	resp, err := http.Get(f.srv.URL + "/api/explain?service=www&var=DATABASE_URL")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"datastore":true`) || !strings.Contains(string(body), redact.Masked) {
		t.Fatalf("explain: %s %s, want the datastore named and its value masked", resp.Status, body)
	}
	if strings.Contains(string(body), "secret@db") {
		t.Errorf("explain shows the datastore value: %s", body)
	}
}

// Requests by another host name (DNS rebinding) and state changes from
// another origin, or while read-only, are refused; the right ones work.
func TestGuardAndResume(t *testing.T) {
	f := newConsoleFixture(t, WithActions(true))
	readOnly := httptest.NewServer(New(f.reg, WithLogger(discard())).Handler())
	defer readOnly.Close()
	g, err := f.reg.Rollout("default", "www")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		srv    *httptest.Server
		host   string
		origin string
		ctype  string
		want   int
	}{
		{"read-only", readOnly, "", "self", "application/json", http.StatusForbidden},
		{"rebinding host", f.srv, "evil.example:80", "http://evil.example:80", "application/json", http.StatusForbidden},
		{"no origin", f.srv, "", "", "application/json", http.StatusForbidden},
		{"cross-site origin", f.srv, "", "http://evil.example", "application/json", http.StatusForbidden},
		{"form post", f.srv, "", "self", "application/x-www-form-urlencoded", http.StatusForbidden},
		{"own origin", f.srv, "", "self", "application/json", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := g.SetHalt(context.Background(), registry.Halt{Node: "n1", Reason: "check failed"}); err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodPost, tt.srv.URL+"/api/rollout/resume", strings.NewReader(`{"federation":"default","group":"www"}`))
			if tt.host != "" {
				req.Host = tt.host
			}
			origin := tt.origin
			if origin == "self" {
				origin = tt.srv.URL
			}
			if origin != "" {
				req.Header.Set("Origin", origin)
			}
			req.Header.Set("Content-Type", tt.ctype)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			h, err := g.Halted(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if (h == nil) != (tt.want == http.StatusOK) {
				t.Fatalf("halt after the request: %+v", h)
			}
		})
	}
	t.Run("halts shown", func(t *testing.T) {
		if err := g.SetHalt(context.Background(), registry.Halt{Node: "n2", Reason: "health timeout"}); err != nil {
			t.Fatal(err)
		}
		f.state(t, func(st State) bool {
			return len(st.Halts) == 1 && st.Halts[0].Node == "n2" && st.Halts[0].Reason == "health timeout" && st.Actions
		})
	})
	t.Run("rebinding host on a read", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/api/state", nil)
		req.Host = "attacker.example"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", resp.StatusCode)
		}
	})
}

// An idle cluster costs the console no Consul reads, however often it asks
// the live listeners; a change is read at once, and only its part: a
// recorded status one list of the statuses, a halt one of the rollouts.
func TestReadsOnlyWhatChanged(t *testing.T) {
	consul := testcluster.StartConsul(t)
	proxy, err := bench.StartProxy("console", consul.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	direct, err := registry.New(registry.WithAddress(consul.Addr), registry.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := manifest.Parse("test.yaml", []byte(fixtureDocs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	// A binding, as a resolver would have written. A prefix with no keys
	// may wake on a write elsewhere (Consul answers it with an index of
	// the whole store): the bounds below allow one such read, and no more.
	binding, _ := json.Marshal(binding.Binding{Federation: "default", Service: "api", Revision: 1})
	if _, err := direct.WriteBindings(ctx, []registry.BindingWrite{{StoredBinding: registry.StoredBinding{Federation: "default", Service: "api", Value: binding}}}); err != nil {
		t.Fatal(err)
	}
	viaProxy, err := registry.New(registry.WithAddress(proxy.Addr), registry.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int64
	c := New(viaProxy, WithLogger(discard()), WithRefresh(20*time.Millisecond), WithLiveStatuses(func(_ context.Context, recorded []registry.Status) []registry.Status {
		asked.Add(1)
		return recorded
	}))
	_, unsubscribe := c.subscribe() // a page watching: every refresh asks the listeners
	t.Cleanup(unsubscribe)
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.Run(runCtx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	// Each of the four watches has had its first answer once it holds a
	// blocking query; two refreshes later, what those answers woke is done.
	testcluster.Eventually(t, 10*time.Second, "four blocking queries held", func() bool { return proxy.Counts()[bench.Blocking] >= 4 })
	after := func(n int64) { // n more refreshes
		want := asked.Load() + n
		testcluster.Eventually(t, 10*time.Second, "refreshes", func() bool { return asked.Load() >= want })
	}
	after(2)
	reads := func() int { return proxy.Counts()[bench.Read] }
	idle := reads()
	after(20)
	if got := reads() - idle; got != 0 {
		t.Errorf("%d Consul reads over 20 refreshes of an idle cluster, want 0 (by path: %v)", got, proxy.ByPath())
	}

	state := func() State {
		var st State
		data, _ := c.current()
		_ = json.Unmarshal(data, &st)
		return st
	}
	before := reads()
	if err := direct.PutStatus(ctx, registry.Status{Node: "n1", Federation: "default", Result: "ok", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 10*time.Second, "the recorded status shows", func() bool {
		st := state()
		return len(st.Nodes) == 1 && st.Nodes[0].Name == "n1" && st.Nodes[0].Result == "ok"
	})
	if got := reads() - before; got < 1 || got > 2 {
		t.Errorf("%d Consul reads for a recorded status, want the statuses' and at most the empty rollouts' (by path: %v)", got, proxy.ByPath())
	}

	g, err := direct.Rollout("default", "www")
	if err != nil {
		t.Fatal(err)
	}
	before = reads()
	if err := g.SetHalt(ctx, registry.Halt{Node: "n1", Reason: "check failed"}); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 10*time.Second, "the halt shows", func() bool { return len(state().Halts) == 1 })
	if got := reads() - before; got < 1 || got > 2 {
		t.Errorf("%d Consul reads for a halt, want the rollouts' and at most one more (by path: %v)", got, proxy.ByPath())
	}
}

// The live listeners are asked only while someone watches: a page's event
// stream, or a script asking /api/state. Nobody watching, refreshes wake
// no listener and the state shows what Consul records.
func TestAsksListenersOnlyWhileWatched(t *testing.T) {
	consul := testcluster.StartConsul(t)
	reg, err := registry.New(registry.WithAddress(consul.Addr), registry.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := reg.PutStatus(ctx, registry.Status{Node: "n1", Federation: "default", Result: "ok", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int64
	c := New(reg, WithLogger(discard()), WithRefresh(100*time.Millisecond), WithLiveStatuses(func(_ context.Context, recorded []registry.Status) []registry.Status {
		asked.Add(1)
		live := make([]registry.Status, len(recorded))
		for i, s := range recorded {
			s.Live = true
			live[i] = s
		}
		return live
	}))
	ticks := make(chan time.Time) // unbuffered: a send returns once Run took the tick
	c.ticks = ticks
	// refreshes returns once n refreshes are done: Run takes the next tick
	// only after it finished with the one before.
	refreshes := func(n int) {
		for range n + 1 {
			ticks <- time.Now()
		}
	}
	srv := httptest.NewServer(c.Handler())
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.Run(runCtx) })
	t.Cleanup(func() { cancel(); wg.Wait(); srv.Close() })
	live := func() (shown, ok bool) {
		var st State
		data, _ := c.current()
		if json.Unmarshal(data, &st) != nil || len(st.Nodes) != 1 {
			return false, false
		}
		return st.Nodes[0].Live, true
	}
	unwatched := func(when string) {
		t.Helper()
		testcluster.Eventually(t, 10*time.Second, "nobody watches "+when, func() bool { return !c.watched() })
		refreshes(1) // drops the listeners' answers shown
		before := asked.Load()
		refreshes(10)
		if got := asked.Load() - before; got != 0 {
			t.Errorf("%s: the listeners were asked %d times over 10 refreshes with nobody watching, want 0", when, got)
		}
		if shown, ok := live(); !ok || shown {
			t.Errorf("%s: the state shows n1 live %v (ok %v), want its record", when, shown, ok)
		}
	}
	testcluster.Eventually(t, 10*time.Second, "the recorded status shows", func() bool { _, ok := live(); return ok })
	unwatched("at start")

	// A page opens its event stream: asked at once, then every refresh.
	streamCtx, closeStream := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(streamCtx, http.MethodGet, srv.URL+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 10*time.Second, "a page's stream shows n1 live", func() bool { shown, _ := live(); return shown })
	before := asked.Load()
	refreshes(5)
	if got := asked.Load() - before; got < 5 {
		t.Errorf("with a page open the listeners were asked %d times over 5 refreshes, want every refresh", got)
	}
	closeStream()
	resp.Body.Close()
	unwatched("after the page closed")

	// A script polling /api/state: its next answers show the listeners'.
	testcluster.Eventually(t, 10*time.Second, "/api/state shows n1 live", func() bool {
		resp, err := http.Get(srv.URL + "/api/state")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st State
		return json.NewDecoder(resp.Body).Decode(&st) == nil && len(st.Nodes) == 1 && st.Nodes[0].Live
	})
	unwatched("after the script stopped polling")
}

// TestFirstAnswerIsLive: nobody watching, the console shows what Consul
// records; the first answer to a script or a page that then asks is
// nonetheless the listeners' own, however seldom it polls.
func TestFirstAnswerIsLive(t *testing.T) {
	consul := testcluster.StartConsul(t)
	reg, err := registry.New(registry.WithAddress(consul.Addr), registry.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := reg.PutStatus(ctx, registry.Status{Node: "n1", Federation: "default", Result: "ok", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	c := New(reg, WithLogger(discard()), WithRefresh(100*time.Millisecond), WithLiveStatuses(func(_ context.Context, recorded []registry.Status) []registry.Status {
		live := make([]registry.Status, len(recorded))
		for i, s := range recorded {
			s.Live, s.Revision = true, 8
			live[i] = s
		}
		return live
	}))
	srv := httptest.NewServer(c.Handler())
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.Run(runCtx) })
	t.Cleanup(func() { cancel(); wg.Wait(); srv.Close() })
	recorded := func() bool {
		var st State
		data, _ := c.current()
		return json.Unmarshal(data, &st) == nil && len(st.Nodes) == 1 && !st.Nodes[0].Live
	}
	for i := range 3 { // a poller slower than the watch window
		testcluster.Eventually(t, 10*time.Second, "nobody watches and the record shows", func() bool { return !c.watched() && recorded() })
		resp, err := http.Get(srv.URL + "/api/state")
		if err != nil {
			t.Fatal(err)
		}
		var st State
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || len(st.Nodes) != 1 || !st.Nodes[0].Live || st.Nodes[0].Revision != 8 {
			t.Fatalf("poll %d: first answer %+v (err %v), want n1 live at revision 8", i, st.Nodes, err)
		}
	}
	testcluster.Eventually(t, 10*time.Second, "nobody watches and the record shows", func() bool { return !c.watched() && recorded() })
	streamCtx, closeStream := context.WithCancel(ctx)
	defer closeStream()
	req, _ := http.NewRequestWithContext(streamCtx, http.MethodGet, srv.URL+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := bufio.NewReader(resp.Body)
	line, err := body.ReadString('\n')
	for err == nil && !strings.HasPrefix(line, "data: ") {
		line, err = body.ReadString('\n')
	}
	var st State
	if err != nil || json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &st) != nil || len(st.Nodes) != 1 || !st.Nodes[0].Live {
		t.Fatalf("a page's first state %q (err %v), want n1 live", line, err)
	}
}
