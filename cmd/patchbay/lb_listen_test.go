package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
)

// Load balancers driven by `patchbay listen`: real nginx and HAProxy
// processes whose configs a real listener renders, checks, installs and
// reloads.

// lbListenManifest is a public load balancer. Its reload commands do
// nothing before the servers run (no pid file yet), so the first runs,
// which install the files the servers start from, succeed; then they
// count themselves in DIR/SERVER.reloads.
const lbListenManifest = `id: lb
requires:
  ROUTES: {key: "*_URL", select: all, public: true, region: any}
templates:
  nginx:
    source: builtin:nginx
    destination: /lb/nginx.conf
    check: [nginx, -t, -q, -c, "{STAGED}"]
    reload: [sh, -c, "if [ -s {{DIR}}/nginx.pid ]; then echo >> {{DIR}}/nginx.reloads; nginx -c {{ROOT}}/lb/nginx.conf -s reload; fi"]
    options: {listen: "127.0.0.1:{{NGINX_PORT}}", pid: {{DIR}}/nginx.pid, error_log: {{DIR}}/nginx-error.log}
  haproxy:
    source: builtin:haproxy
    destination: /lb/haproxy.cfg
    check: [haproxy, -c, -q, -f, "{STAGED}"]
    reload: [sh, -c, "if [ -s {{DIR}}/haproxy.pid ]; then echo >> {{DIR}}/haproxy.reloads; kill -USR2 $(cat {{DIR}}/haproxy.pid); fi"]
    options: {listen: "127.0.0.1:{{HAPROXY_PORT}}", check_inter: 500ms{{HAPROXY_OPTIONS}}}
`

// lbNode is one node running `patchbay listen` for the lb service, with
// nginx and HAProxy serving what it renders.
type lbNode struct {
	c         *listenCluster
	n         *listenNode
	d         *listenDaemon
	dir       string
	nginxConf string
	haCfg     string
	lbs       map[string]string // server name → host:port it listens on
	pids      map[string]int
}

// startLBNode publishes the lb manifest (haproxyOptions are extra
// "key: value" pairs of builtin:haproxy) and starts its listener. The
// servers start once the listener has installed their first configs
// (startServers).
func startLBNode(t *testing.T, c *listenCluster, haproxyOptions string) *lbNode {
	t.Helper()
	n := newListenNode(t, c, "lb-1", true)
	l := &lbNode{c: c, n: n, dir: t.TempDir(), pids: map[string]int{}}
	l.nginxConf, l.haCfg = filepath.Join(n.root, "lb/nginx.conf"), filepath.Join(n.root, "lb/haproxy.cfg")
	ngPort, haPort := freePort(t), freePort(t)
	l.lbs = map[string]string{"nginx": "127.0.0.1:" + strconv.Itoa(ngPort), "haproxy": "127.0.0.1:" + strconv.Itoa(haPort)}
	if haproxyOptions != "" {
		haproxyOptions = ", " + haproxyOptions
	}
	m := strings.NewReplacer("{{DIR}}", l.dir, "{{ROOT}}", n.root, "{{NGINX_PORT}}", strconv.Itoa(ngPort),
		"{{HAPROXY_PORT}}", strconv.Itoa(haPort), "{{HAPROXY_OPTIONS}}", haproxyOptions).Replace(lbListenManifest)
	c.publish(t, map[string]string{"lb": m})
	// The reloads count themselves through sh, and the files go to /lb, which
	// listener.yaml must allow.
	n.write(t, "  - service: lb\n", "allow: {commands: [[sh, -c, \"**\"]], destinations: [/lb/*]}\n")
	l.d = startListen(t, "--config", n.path)
	return l
}

// startServers runs nginx and HAProxy on the installed configs.
func (l *lbNode) startServers(t *testing.T) {
	t.Helper()
	testcluster.Eventually(t, 20*time.Second, "both configs installed", func() bool {
		return fileExists(l.nginxConf) && fileExists(l.haCfg)
	})
	l.pids["nginx"] = startServer(t, l.dir, "nginx", "-c", l.nginxConf, "-g", "daemon off;")
	l.pids["haproxy"] = startServer(t, l.dir, "haproxy", "-W", "-db", "-f", l.haCfg, "-p", filepath.Join(l.dir, "haproxy.pid"))
	testcluster.Eventually(t, 10*time.Second, "nginx and HAProxy to write their pid files", func() bool {
		return fileExists(filepath.Join(l.dir, "nginx.pid")) && fileExists(filepath.Join(l.dir, "haproxy.pid"))
	})
}

// both reports whether both configs contain s.
func (l *lbNode) both(s string) bool {
	ng, _ := os.ReadFile(l.nginxConf)
	ha, _ := os.ReadFile(l.haCfg)
	return strings.Contains(string(ng), s) && strings.Contains(string(ha), s)
}

// neither reports whether no config contains s.
func (l *lbNode) neither(s string) bool {
	ng, _ := os.ReadFile(l.nginxConf)
	ha, _ := os.ReadFile(l.haCfg)
	return !strings.Contains(string(ng), s) && !strings.Contains(string(ha), s)
}

// answers reports whether every load balancer answers host with code
// (and body, unless "").
func (l *lbNode) answers(host string, code int, body string) bool {
	for _, addr := range l.lbs {
		b, c := get(addr, host)
		if c != code || (body != "" && b != body) {
			return false
		}
	}
	return true
}

// lbRun is the lb service's part of the listener's last run, once the
// listener is idle after a run of at least the binding's revision.
func (l *lbNode) lbRun(t *testing.T) (listener.ServiceRun, bool) {
	t.Helper()
	r, ok := controlStatus(t, l.n.control)
	if !ok || !idleAfterRun(r) {
		return listener.ServiceRun{}, false
	}
	want := l.c.binding(t, "lb").Revision
	for _, s := range r.LastRun.Services {
		if s.Service == "lb" && s.Revision >= want {
			return s, true
		}
	}
	return listener.ServiceRun{}, false
}

// binding is a service's stored binding.
func (c *listenCluster) binding(t *testing.T, service string) binding.Binding {
	t.Helper()
	sb, err := c.reg.Binding(context.Background(), "default", service, "")
	if err != nil || sb == nil {
		t.Fatalf("binding of %s: %v", service, err)
	}
	var b binding.Binding
	if err := json.Unmarshal(sb.Value, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

func publicWeb(public bool) string {
	return fmt.Sprintf("id: web\npublic: %t\nprovides: {WEB_URL: \"http://{HOST}:{PORT}\"}\n", public)
}

// TestListenLBPolicyBeatsLastGood: a service that stops being allowed in a
// public load balancer leaves it at once, even when it was the route's
// last provider; a provider that dies is kept by the last good file.
func TestListenLBPolicyBeatsLastGood(t *testing.T) {
	testcluster.RequirePrograms(t, "nginx", "haproxy")
	c := startListenCluster(t)
	addr := "--consul-addr=" + c.consul.Addr
	c.publish(t, map[string]string{"web": publicWeb(true)})
	port := namedBackend(t, "web-0")
	register := func(extra ...string) *process {
		p := startPatchbay(t, append([]string{"register", addr, "web", "--node", "n1", "--address", "127.0.0.1", "--port", port, "--owner-ttl", "2s"}, extra...)...)
		p.waitLine(t, "registered", 20*time.Second)
		return p
	}
	owner := register()
	l := startLBNode(t, c, "")
	upstream := "127.0.0.1:" + port
	testcluster.Eventually(t, 20*time.Second, "web in both configs", func() bool { return l.both(upstream) })
	l.startServers(t)
	testcluster.Eventually(t, 10*time.Second, "both LBs route web", func() bool { return l.answers("web", http.StatusOK, "web-0") })

	leaves := func(why string) {
		t.Helper()
		testcluster.Eventually(t, 20*time.Second, why+": web gone from both configs and both LBs answer 404", func() bool {
			return l.neither(upstream) && l.answers("web", http.StatusNotFound, "")
		})
		s, ok := l.lbRun(t)
		if !ok || s.Result != listener.ResultSkipped || !strings.Contains(s.Reason, "rendered without the providers policy no longer allows") {
			t.Fatalf("%s: lb's run %+v, want skipped with the policy render noted", why, s)
		}
	}
	comesBack := func(why string) {
		t.Helper()
		testcluster.Eventually(t, 20*time.Second, why+": both LBs route web again", func() bool {
			return l.both(upstream) && l.answers("web", http.StatusOK, "web-0")
		})
	}

	c.publish(t, map[string]string{"web": publicWeb(false)})
	leaves("made private")
	c.publish(t, map[string]string{"web": publicWeb(true)})
	comesBack("public again")

	// Dying is what the last good file is for: the owner dies, the instance
	// goes, the binding is unresolved and the file keeps its upstream.
	if err := owner.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 20*time.Second, "the listener to apply the unresolved binding", func() bool {
		if b := c.binding(t, "lb"); b.Ready() {
			return false
		}
		s, ok := l.lbRun(t)
		return ok && s.Result == listener.ResultSkipped
	})
	if s, _ := l.lbRun(t); !l.both(upstream) || strings.Contains(s.Reason, "policy") {
		t.Fatalf("a provider that died left the last good configs (run %+v)", s)
	}
	owner = register()
	testcluster.Eventually(t, 20*time.Second, "the listener to apply the binding with web back", func() bool {
		s, ok := l.lbRun(t)
		return ok && s.Result == listener.ResultOK
	})

	if code, _, stderr := patchbay(t, "unpublish", addr, "web"); code != 0 {
		t.Fatalf("unpublish: %s", stderr)
	}
	leaves("unpublished")
	c.publish(t, map[string]string{"web": publicWeb(true)})
	comesBack("published again")

	// The service moves to federation other: its instance here dies (which
	// alone would keep the file) and one in other serves the same address.
	if code, _, stderr := patchbay(t, "publish", addr, writeServices(t, map[string]string{"web": "federation: other\n" + publicWeb(true)})); code != 0 {
		t.Fatalf("publish in federation other: %s", stderr)
	}
	if err := owner.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	register("--federation", "other")
	leaves("moved to federation other")
	assertRunning(t, "nginx", l.pids["nginx"])
	assertRunning(t, "haproxy", l.pids["haproxy"])
}

// TestListenLBBadUpstream: an upstream whose host name does not resolve is
// left out of the load balancers and reported; the other changes apply.
func TestListenLBBadUpstream(t *testing.T) {
	testcluster.RequirePrograms(t, "nginx", "haproxy")
	c := startListenCluster(t)
	addr := "--consul-addr=" + c.consul.Addr
	c.publish(t, map[string]string{"web": publicWeb(true)})
	goodPort := namedBackend(t, "web-good")
	startPatchbay(t, "register", addr, "web", "--node", "n1", "--address", "127.0.0.1", "--port", goodPort).waitLine(t, "registered", 20*time.Second)
	l := startLBNode(t, c, "")
	testcluster.Eventually(t, 20*time.Second, "web in both configs", func() bool { return l.both("127.0.0.1:" + goodPort) })
	l.startServers(t)

	// A host name that is valid but resolves nowhere: nginx -t would refuse
	// the whole config with it.
	startPatchbay(t, "register", addr, "web", "--node", "n9", "--address", "evil.example", "--port", "81").waitLine(t, "registered", 20*time.Second)
	// And a change that must apply despite it.
	newPort := namedBackend(t, "web-new")
	startPatchbay(t, "register", addr, "web", "--node", "n2", "--address", "127.0.0.1", "--port", newPort).waitLine(t, "registered", 20*time.Second)

	var s listener.ServiceRun
	testcluster.Eventually(t, 20*time.Second, "the new backend applied, the bad one left out", func() bool {
		var ok bool
		s, ok = l.lbRun(t)
		return ok && len(c.binding(t, "lb").Vars["ROUTES"].Providers) == 3 && l.both("127.0.0.1:"+newPort)
	})
	if s.Result != listener.ResultOK || !l.neither("evil.example") {
		t.Fatalf("lb's run %+v; evil.example in a config: %t", s, !l.neither("evil.example"))
	}
	for _, tr := range s.Templates {
		if len(tr.Excluded) != 1 || !strings.Contains(tr.Excluded[0], "web@n9:81") || !strings.Contains(tr.Excluded[0], "evil.example does not resolve") {
			t.Errorf("template %s: excluded %q", tr.Name, tr.Excluded)
		}
	}
	testcluster.Eventually(t, 10*time.Second, "both LBs route to the new backend", func() bool {
		seen := map[string]bool{}
		for range 8 {
			b, _ := get(l.lbs["nginx"], "web")
			seen[b] = true
			b, _ = get(l.lbs["haproxy"], "web")
			seen[b] = true
		}
		return seen["web-good"] && seen["web-new"]
	})
	_, metrics := controlGet(l.n.control, "/metrics")
	if !strings.Contains(metrics, "\npatchbay_listener_upstreams_left_out 2\n") {
		t.Errorf("/metrics lacks patchbay_listener_upstreams_left_out 2")
	}
	testcluster.Eventually(t, 10*time.Second, "patchbay status to name the left-out upstream", func() bool {
		code, stdout, _ := patchbay(t, "status", addr, "--nats-url", c.nats.URL)
		return code == 0 && strings.Contains(stdout, "evil.example does not resolve")
	})
}

// pathBackend serves its name and the request's path.
func pathBackend(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name+" "+r.URL.Path) }))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Port()
}

// TestListenLBRouteConflict: two services provide API_URL, one mounted at
// /api, one at /. The route is never flattened onto one instance's path:
// it keeps the mount most upstreams share, through both load balancers,
// and the run names both services.
func TestListenLBRouteConflict(t *testing.T) {
	testcluster.RequirePrograms(t, "nginx", "haproxy")
	c := startListenCluster(t)
	addr := "--consul-addr=" + c.consul.Addr
	c.publish(t, map[string]string{
		"api-mounted": "id: api-mounted\npublic: true\nprovides: {API_URL: \"http://{HOST}:{PORT}/api\"}\n",
		"api-root":    "id: api-root\npublic: true\nprovides: {API_URL: \"http://{HOST}:{PORT}\"}\n",
	})
	// Flattened onto its first upstream (api-mounted@n1, lowest in instance
	// order), the route used to send api-root requests for /api/x too.
	for i, svc := range []string{"api-root", "api-mounted", "api-mounted"} {
		port := pathBackend(t, fmt.Sprintf("%s-%d", svc, i))
		startPatchbay(t, "register", addr, svc, "--node", fmt.Sprintf("n%d", i), "--address", "127.0.0.1", "--port", port).waitLine(t, "registered", 20*time.Second)
	}
	l := startLBNode(t, c, "")
	var s listener.ServiceRun
	testcluster.Eventually(t, 20*time.Second, "a run with all three providers", func() bool {
		var ok bool
		s, ok = l.lbRun(t)
		return ok && len(c.binding(t, "lb").Vars["ROUTES"].Providers) == 3
	})
	l.startServers(t)
	if s.Result != listener.ResultOK || len(s.Templates) != 2 {
		t.Fatalf("lb's run: %+v", s)
	}
	for _, tr := range s.Templates {
		if len(tr.Conflicts) != 1 || !strings.Contains(tr.Conflicts[0], "api-mounted (2)") || !strings.Contains(tr.Conflicts[0], "api-root (1)") {
			t.Errorf("template %s: conflicts %q, want one naming both services", tr.Name, tr.Conflicts)
		}
	}
	testcluster.Eventually(t, 10*time.Second, "both LBs to send /x to the mounted providers at /api/x", func() bool {
		for name, lbAddr := range l.lbs {
			for range 6 {
				req, _ := http.NewRequest(http.MethodGet, "http://"+lbAddr+"/x", nil)
				req.Host = "api"
				resp, err := lbClient.Do(req)
				if err != nil {
					return false
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "api-mounted-") || !strings.HasSuffix(string(b), " /api/x") {
					t.Logf("%s: %d %q", name, resp.StatusCode, b)
					return false
				}
			}
		}
		return true
	})
}
