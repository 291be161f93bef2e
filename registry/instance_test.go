package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

func TestInstanceLifecycle(t *testing.T) {
	consul := testcluster.StartConsul(t)
	ctx := context.Background()

	t.Run("provides expanded and catalog entry", func(t *testing.T) {
		c := newClient(t, consul)
		publish(t, c, parseManifest(t, `id: web
public: true
environment: {PORT: "1", SCHEME: https}
provides: {WEB_URL: "{SCHEME}://{HOST}:{PORT}/{NODE}/{REGION}/{{x}}"}
`))
		o := register(t, c, InstanceSpec{Federation: "default", Service: "web", Node: "web-1", Address: "10.1.2.3", Port: 8443, Region: "eu"})
		waitRegistered(t, o)
		got := instances(t, c, "web")
		if len(got) != 1 || got[0].Provides["WEB_URL"] != "https://10.1.2.3:8443/web-1/eu/{x}" || !got[0].Public {
			t.Fatalf("instances = %+v", got)
		}
		svcs, _, err := consul.Client.Catalog().Service("web", "public", nil)
		if err != nil || len(svcs) != 1 || svcs[0].ServiceID != o.ID() || svcs[0].ServiceAddress != "10.1.2.3" || svcs[0].ServiceMeta["patchbay_region"] != "eu" {
			t.Fatalf("catalog = %+v, %v", svcs, err)
		}
	})

	t.Run("not published", func(t *testing.T) {
		c := newClient(t, consul)
		_, err := c.Register(ctx, InstanceSpec{Federation: "default", Service: "ghost", Node: "n", Address: "127.0.0.1", Port: 1})
		if err == nil || !isNotFound(err) {
			t.Fatalf("register of an unpublished service: %v", err)
		}
	})

	t.Run("clean close deregisters at once", func(t *testing.T) {
		c := newClient(t, consul)
		publish(t, c, parseManifest(t, "id: svc\n"))
		o := register(t, c, InstanceSpec{Federation: "default", Service: "svc", Node: "n1", Address: "127.0.0.1", Port: 7000})
		waitRegistered(t, o)
		if err := o.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if got := instances(t, c, "svc"); len(got) != 0 {
			t.Fatalf("instance still registered after Close: %+v", got)
		}
		svcs, _, _ := consul.Client.Catalog().Service("svc", "", nil)
		if len(svcs) != 0 {
			t.Fatalf("catalog entry left after Close: %+v", svcs)
		}
	})

	t.Run("re-registers after loss", func(t *testing.T) {
		c := newClient(t, consul)
		publish(t, c, parseManifest(t, "id: svc\n"))
		o := register(t, c, InstanceSpec{Federation: "default", Service: "svc", Node: "n1", Address: "127.0.0.1", Port: 7001}, WithMaxBackoff(200*time.Millisecond), WithHoldCheck(500*time.Millisecond))
		waitRegistered(t, o)
		// An operator (or a Consul failure) destroys the session.
		destroySessions(t, consul, "patchbay instance "+o.ID())
		testcluster.Eventually(t, 5*time.Second, "instance removed with its session", func() bool { return len(instances(t, c, "svc")) == 0 })
		took := testcluster.Eventually(t, 10*time.Second, "instance registered again", func() bool { return len(instances(t, c, "svc")) == 1 })
		t.Logf("re-registered %s after losing its session", took.Round(time.Millisecond))
	})

	// A server invalidates the session (here: destroyed) while the owner's
	// agent sees nothing wrong. With an hour between hold checks, only
	// Recheck, the resolver's nudge, brings the instance back soon; a
	// flood of nudges costs one read a second.
	t.Run("recheck re-registers a lost instance at once", func(t *testing.T) {
		c := newClient(t, consul)
		publish(t, c, parseManifest(t, "id: svc\n"))
		o := register(t, c, InstanceSpec{Federation: "default", Service: "svc", Node: "n1", Address: "127.0.0.1", Port: 7002}, WithMaxBackoff(200*time.Millisecond), WithHoldCheck(time.Hour))
		waitRegistered(t, o)
		destroySessions(t, consul, "patchbay instance "+o.ID())
		testcluster.Eventually(t, 5*time.Second, "instance removed with its session", func() bool { return len(instances(t, c, "svc")) == 0 })
		for range 100 {
			o.Recheck()
		}
		took := testcluster.Eventually(t, 5*time.Second, "instance registered again after the nudge", func() bool { return len(instances(t, c, "svc")) == 1 })
		t.Logf("re-registered %s after the nudge", took.Round(time.Millisecond))
	})

	// An owner that lost track of its session while Consul was unreachable
	// (it could not destroy it) finds its instance key held by that earlier
	// session, which still lives: it takes the key over instead of failing
	// "held by another session" until someone restarts it.
	t.Run("takes over from its own earlier session", func(t *testing.T) {
		c := newClient(t, consul)
		publish(t, c, parseManifest(t, "id: svc\n"))
		spec := InstanceSpec{Federation: "default", Service: "svc", Node: "n1", Address: "127.0.0.1", Port: 7002}
		earlier, err := c.createSession(t.Context(), map[string]any{"Name": "patchbay instance " + spec.ID(), "Behavior": api.SessionBehaviorDelete, "LockDelay": "0s"})
		if err != nil {
			t.Fatal(err)
		}
		key := c.keys.instance("default", "svc", spec.ID())
		if ok, _, err := consul.Client.KV().Acquire(&api.KVPair{Key: key, Value: []byte("{}"), Session: earlier}, nil); err != nil || !ok {
			t.Fatalf("acquire as the earlier session: %v %v", ok, err)
		}
		o := register(t, c, spec, WithMaxBackoff(200*time.Millisecond))
		waitRegistered(t, o)
		pair, _, err := consul.Client.KV().Get(key, nil)
		if err != nil || pair == nil || pair.Session == earlier {
			t.Fatalf("instance key after register = %+v, %v; want it held by the new session", pair, err)
		}
		if info, _, _ := consul.Client.Session().Info(earlier, nil); info != nil {
			t.Errorf("the earlier session still lives: %+v", info)
		}
	})

	t.Run("failing health check removes it, recovery brings it back", func(t *testing.T) {
		c := newClient(t, consul)
		var healthy atomic.Bool
		healthy.Store(true)
		backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !healthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
		defer backend.Close()
		u, _ := url.Parse(backend.URL)
		port, _ := strconv.Atoi(u.Port())
		publish(t, c, parseManifest(t, "id: svc\nhealth: {http: \"http://{HOST}:{PORT}/healthz\", interval: 200ms}\n"))
		o := register(t, c, InstanceSpec{Federation: "default", Service: "svc", Node: "n1", Address: "127.0.0.1", Port: port}, WithMaxBackoff(300*time.Millisecond))
		waitRegistered(t, o)
		healthy.Store(false)
		took := testcluster.Eventually(t, 5*time.Second, "unhealthy instance removed", func() bool { return len(instances(t, c, "svc")) == 0 })
		t.Logf("unhealthy instance gone %s after its check started failing", took.Round(time.Millisecond))
		healthy.Store(true)
		// A check that passes again before the owner's local look (every
		// TTL) leaves the loss to its read of the key, every hold check.
		took = testcluster.Eventually(t, DefaultHoldCheck+DefaultOwnerTTL+5*time.Second, "recovered instance back", func() bool { return len(instances(t, c, "svc")) == 1 })
		t.Logf("recovered instance back %s after its check passed again", took.Round(time.Millisecond))
	})
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

func TestUniqueTakeover(t *testing.T) {
	consul := testcluster.StartConsul(t)
	c := newClient(t, consul)
	ctx := context.Background()
	publish(t, c, parseManifest(t, "id: cron\nunique: true\nprovides: {CRON_URL: \"http://{HOST}:{PORT}\"}\n"))
	a := register(t, c, InstanceSpec{Federation: "default", Service: "cron", Node: "a", Address: "127.0.0.1", Port: 7100})
	waitRegistered(t, a)
	b := register(t, c, InstanceSpec{Federation: "default", Service: "cron", Node: "b", Address: "127.0.0.1", Port: 7101})
	// b stands by: it never shows up while a lives.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if got := instances(t, c, "cron"); len(got) != 1 || got[0].Node != "a" {
			t.Fatalf("unique service has instances %+v while a holds it", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, ok := b.Current(); ok {
		t.Fatal("standby reports itself registered")
	}
	start := time.Now()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 10*time.Second, "standby takes over", func() bool {
		got := instances(t, c, "cron")
		return len(got) == 1 && got[0].Node == "b"
	})
	t.Logf("takeover after a clean stop of the holder: %s ", time.Since(start).Round(time.Millisecond))
}

func TestIndexedConcurrentRegistrants(t *testing.T) {
	consul := testcluster.StartConsul(t)
	c := newClient(t, consul)
	ctx := context.Background()
	publish(t, c, parseManifest(t, "id: worker\nindexed: true\nprovides: {WORKER_NAME: \"worker-{INDEX}\"}\n"))

	const n = 20
	owners := make([]*Owner, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := c.Register(ctx, InstanceSpec{Federation: "default", Service: "worker", Node: fmt.Sprintf("w%02d", i), Address: "127.0.0.1", Port: 7200 + i})
			if err != nil {
				t.Error(err)
				return
			}
			owners[i] = o
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, o := range owners {
			if o != nil {
				_ = o.Close(ctx)
			}
		}
	})
	// At every moment, no two live instances share an index.
	noDuplicates := func() []int {
		var idx []int
		for _, in := range instances(t, c, "worker") {
			if slices.Contains(idx, in.Index) {
				t.Fatalf("two live instances share index %d", in.Index)
			}
			if in.Provides["WORKER_NAME"] != fmt.Sprintf("worker-%d", in.Index) {
				t.Fatalf("provides not expanded with the index: %+v", in)
			}
			idx = append(idx, in.Index)
		}
		slices.Sort(idx)
		return idx
	}
	testcluster.Eventually(t, 30*time.Second, "all 20 registered", func() bool { return len(noDuplicates()) == n })
	if got := noDuplicates(); got[0] != 0 || got[n-1] != n-1 {
		t.Fatalf("indexes = %v, want 0..19", got)
	}
	// Free three indexes; new registrants get the smallest free ones.
	var freed []int
	for _, o := range owners[:3] {
		in, _ := o.Current()
		freed = append(freed, in.Index)
		if err := o.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(freed)
	for i := range 3 {
		o := register(t, c, InstanceSpec{Federation: "default", Service: "worker", Node: fmt.Sprintf("new%d", i), Address: "127.0.0.1", Port: 7300 + i})
		waitRegistered(t, o)
		in, _ := o.Current()
		if in.Index != freed[i] {
			t.Fatalf("new registrant %d got index %d, want the smallest free %d (freed %v)", i, in.Index, freed[i], freed)
		}
		noDuplicates()
	}
}
