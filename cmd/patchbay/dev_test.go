package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/harness/dev"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
)

// devCluster is `patchbay dev` running as a child process.
type devCluster struct {
	*listenDaemon
	dir     string
	flags   []string // --consul-addr, --nats-url, --dir
	console string   // the console's URL
}

func startDev(t *testing.T) *devCluster {
	t.Helper()
	testcluster.RequireConsulBinary(t)
	consulPort, err := dev.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	natsPort, err := dev.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	consolePort, err := dev.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c := &devCluster{dir: filepath.Join(t.TempDir(), ".patchbay-dev"), console: fmt.Sprintf("http://127.0.0.1:%d/", consolePort)}
	c.flags = []string{"--consul-addr", fmt.Sprintf("127.0.0.1:%d", consulPort), "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", natsPort)}
	c.listenDaemon = startDaemon(t, append([]string{"dev", "--dir", c.dir, "--services", "../../examples/services", "--http-addr", fmt.Sprintf("127.0.0.1:%d", consolePort)}, c.flags...)...)
	return c
}

// node reads the listener.yaml that a simulated node runs.
func (c *devCluster) node(t *testing.T, name string) *listener.Config {
	t.Helper()
	var cfg *listener.Config
	testcluster.Eventually(t, 30*time.Second, "listener.yaml of "+name, func() bool {
		var err error
		cfg, err = listener.LoadConfig(filepath.Join(c.dir, name, "listener.yaml"), "consul-addr", "nats-url", "prefix", "federation")
		return err == nil
	})
	return cfg
}

// upstream is how the load balancers' configs name an instance's address.
func upstream(cfg *listener.Config) string {
	return fmt.Sprintf("127.0.0.1:%d", cfg.Services[0].Port)
}

func (c *devCluster) file(node, dest string) string {
	data, _ := os.ReadFile(filepath.Join(c.dir, node, dest))
	return string(data)
}

const (
	haproxyCfg = "etc/haproxy/haproxy.cfg"
	nginxConf  = "etc/nginx/nginx.conf"
	wwwEnv     = "etc/app-www/env"
	localCfg   = "state/local-haproxy.cfg" // the node's local load balancer
)

// The README's "Try it" section, step by step: patchbay dev brings up the
// example cluster, and each thing to try behaves as the README says.
func TestDev(t *testing.T) {
	c := startDev(t)
	web1, web2, api1, lb1 := c.node(t, "web-1"), c.node(t, "web-2"), c.node(t, "api-1"), c.node(t, "lb-1")

	t.Run("renders every node's files", func(t *testing.T) {
		testcluster.Eventually(t, 90*time.Second, "nginx and HAProxy configs listing every instance, env files on the web nodes", func() bool {
			nginx, haproxy := c.file("lb-1", nginxConf), c.file("lb-1", haproxyCfg)
			return strings.Contains(nginx, upstream(web1)) && strings.Contains(nginx, upstream(web2)) &&
				strings.Contains(haproxy, upstream(api1)) && strings.Contains(haproxy, upstream(web1)) &&
				strings.Contains(c.file("web-1", wwwEnv), "API_URL=") && strings.Contains(c.file("web-2", wwwEnv), "API_URL=")
		})
		if nginx := c.file("lb-1", nginxConf); strings.Contains(nginx, upstream(api1)) {
			t.Errorf("the public load balancer routes to the private api:\n%s", nginx)
		}
		testcluster.Eventually(t, 30*time.Second, "a table with a row per node", func() bool {
			out := c.stdout.String()
			return strings.Contains(out, "NODE") && nodeRow(out, "lb-1", "lb-public,lb-internal") && nodeRow(out, "api-1", "api")
		})
	})

	t.Run("console", func(t *testing.T) {
		if !strings.Contains(c.stdout.String(), "console: "+c.console) {
			t.Fatalf("dev did not print the console's URL %s:\n%s", c.console, c.stdout.String())
		}
		testcluster.Eventually(t, 30*time.Second, "the console's state listing app-www's instances", func() bool {
			body, err := httpGet(c.console + "api/state")
			return err == nil && strings.Contains(body, `"id":"app-www@web-1:`) && strings.Contains(body, `"live":true,"queue":{`)
		})
	})

	t.Run("start another api node", func(t *testing.T) {
		testcluster.RequirePrograms(t, "haproxy") // web-1's local load balancer
		env := c.file("web-1", wwwEnv)            // app-www's API_URL is served via: local
		api2 := startDaemon(t, append([]string{"dev", "node", "api-2", "api", "--dir", c.dir}, c.flags...)...)
		cfg := c.node(t, "api-2")
		testcluster.Eventually(t, 30*time.Second, "api-2 in lb-1's haproxy.cfg and in the table", func() bool {
			return strings.Contains(c.file("lb-1", haproxyCfg), upstream(cfg)) && nodeRow(c.stdout.String(), "api-2", "api")
		})
		testcluster.Eventually(t, 30*time.Second, "api-2 in web-1's local HAProxy", func() bool {
			return strings.Contains(c.file("web-1", localCfg), upstream(cfg))
		})
		defer func() {
			testcluster.Eventually(t, 30*time.Second, "api-2 gone from web-1's local HAProxy", func() bool {
				return !strings.Contains(c.file("web-1", localCfg), upstream(cfg))
			})
			if got := c.file("web-1", wwwEnv); got != env {
				t.Errorf("web-1's env file changed while api nodes came and went:\n%s\nwas\n%s", got, env)
			}
		}()

		t.Log("kill one: Ctrl-C deregisters it at once")
		api2.signal(t, syscall.SIGINT)
		if code := api2.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("dev node exited %d after Ctrl-C, want 0:\n%s", code, api2.stderr.String())
		}
		testcluster.Eventually(t, 30*time.Second, "api-2 gone from haproxy.cfg", func() bool {
			return !strings.Contains(c.file("lb-1", haproxyCfg), upstream(cfg))
		})
	})

	t.Run("pause a listener", func(t *testing.T) {
		if code, out, errOut := patchbay(t, "pause", "--control", lb1.Control); code != 0 {
			t.Fatalf("pause: exit %d\n%s%s", code, out, errOut)
		}
		api3 := startDaemon(t, append([]string{"dev", "node", "api-3", "api", "--dir", c.dir}, c.flags...)...)
		cfg := c.node(t, "api-3")
		testcluster.Eventually(t, 30*time.Second, "lb-1 paused with a change pending", func() bool {
			r, ok := controlStatus(t, lb1.Control)
			return ok && r.Queue.Paused && r.Queue.Pending
		})
		if strings.Contains(c.file("lb-1", haproxyCfg), upstream(cfg)) {
			t.Fatal("a paused lb-1 applied api-3")
		}
		if code, out, errOut := patchbay(t, "resume", "--control", lb1.Control); code != 0 {
			t.Fatalf("resume: exit %d\n%s%s", code, out, errOut)
		}
		testcluster.Eventually(t, 30*time.Second, "api-3 in haproxy.cfg after resume", func() bool {
			return strings.Contains(c.file("lb-1", haproxyCfg), upstream(cfg))
		})

		t.Log("kill -9: the instance goes once its health check fails")
		if err := api3.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		testcluster.Eventually(t, 60*time.Second, "api-3 gone from haproxy.cfg", func() bool {
			return !strings.Contains(c.file("lb-1", haproxyCfg), upstream(cfg))
		})
	})

	t.Run("publish a changed manifest", func(t *testing.T) {
		path := filepath.Join(c.dir, "services", "app-www", "10-app.yaml")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(string(data), "WORKERS: 4", "WORKERS: 8", 1)
		if edited == string(data) {
			t.Fatalf("%s has no WORKERS: 4 to change", path)
		}
		if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out, errOut := patchbay(t, append([]string{"publish", filepath.Dir(path)}, c.flags...)...); code != 0 {
			t.Fatalf("publish: exit %d\n%s%s", code, out, errOut)
		}
		testcluster.Eventually(t, 120*time.Second, "WORKERS='8' in the env file of web-1 and web-2", func() bool {
			return strings.Contains(c.file("web-1", wwwEnv), "WORKERS='8'") && strings.Contains(c.file("web-2", wwwEnv), "WORKERS='8'")
		})
	})

	t.Run("Ctrl-C stops everything", func(t *testing.T) {
		api5 := startDaemon(t, append([]string{"dev", "node", "api-5", "api", "--dir", c.dir}, c.flags...)...)
		testcluster.Eventually(t, 30*time.Second, "api-5 in the table", func() bool { return nodeRow(c.stdout.String(), "api-5", "api") })
		c.signal(t, syscall.SIGINT)
		if code := c.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("patchbay dev exited %d after Ctrl-C, want 0", code)
		}
		// A dev node stops with its cluster: left running, it would
		// register itself into the next one, a ghost.
		if code := api5.wait(t, 10*time.Second); code != 0 || !strings.Contains(api5.stdout.String(), "node api-5 stopped: the dev cluster is stopping") {
			t.Errorf("dev node api-5: exit %d after the cluster stopped\n%s", code, api5.stdout.String())
		}
		if log, _ := os.ReadFile(filepath.Join(c.dir, "api-5.log")); !strings.Contains(string(log), "instance deregistered") {
			t.Errorf("api-5 did not deregister before Consul stopped:\n%s", log)
		}
		// Every node trusted the resolver's key of this run, and every
		// event it published verified.
		for _, name := range []string{"dev.log", "api-5.log"} {
			log, _ := os.ReadFile(filepath.Join(c.dir, name))
			for _, bad := range []string{"trusted unauthenticated", "not signed by a key"} {
				if strings.Contains(string(log), bad) {
					t.Errorf("%s says %q: dev's events are not signed end to end", name, bad)
				}
			}
		}
		testcluster.WaitClosed(t, c.flags[1], 10*time.Second)
		testcluster.WaitClosed(t, strings.TrimPrefix(c.flags[3], "nats://"), 10*time.Second)
		if pids := consulAgents(t, c.flags[1]); len(pids) > 0 {
			t.Fatalf("consul agents still running for %s: %v", c.flags[1], pids)
		}
		if !strings.Contains(c.stdout.String(), "nothing of it is left running") {
			t.Errorf("no goodbye line on stdout:\n%s", c.stdout.String())
		}
	})
}

// A dev node whose cluster was killed stops too, rather than wait for the
// next cluster on the same addresses and register into it.
func TestDevNodeStopsWithKilledCluster(t *testing.T) {
	c := startDev(t)
	c.node(t, "web-1")
	n := startDaemon(t, append([]string{"dev", "node", "api-9", "api", "--dir", c.dir}, c.flags...)...)
	testcluster.Eventually(t, 30*time.Second, "api-9 in the table", func() bool { return nodeRow(c.stdout.String(), "api-9", "api") })
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 10*time.Second)
	if code := n.wait(t, 30*time.Second); code != 0 || !strings.Contains(n.stdout.String(), "node api-9 stopped: lost the dev cluster's NATS") {
		t.Errorf("dev node api-9: exit %d after its cluster was killed\n%s", code, n.stdout.String())
	}
}

// consulAgents lists the processes whose command line serves HTTP on addr.
func consulAgents(t *testing.T, addr string) []string {
	t.Helper()
	_, port, _ := strings.Cut(addr, ":")
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(data), "agent") && strings.Contains(string(data), "http = "+port+",") {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

// A second patchbay dev names every taken address with the flag that
// moves it, in one error, before the console takes its port: the console's
// "address already in use" alone named no flag.
func TestDevReportsEveryTakenAddress(t *testing.T) {
	taken := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l.Addr().String()
	}
	consul, natsAddr, console := taken(), taken(), taken()
	code, _, stderr := patchbay(t, "dev", "--dir", filepath.Join(t.TempDir(), ".patchbay-dev"), "--services", "../../examples/services",
		"--http-addr", console, "--consul-addr", consul, "--nats-url", "nats://"+natsAddr)
	if code == 0 {
		t.Fatalf("patchbay dev exited 0 with its addresses taken")
	}
	for _, want := range []string{"console " + console + " is taken", "--http-addr 127.0.0.1:18700", "consul-addr " + consul + " is taken", "--consul-addr", "nats-url nats://" + natsAddr + " is taken", "--nats-url"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}
