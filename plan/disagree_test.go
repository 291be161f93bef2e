package plan_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/manifest"
)

// The four points on which plan and a real listener disagreed (issue
// 26): each case is a node's run that plan must predict exactly. They
// are the seed of the generated cases (TestPlanAgreesGenerated).
func TestPlanAgreesWithListener(t *testing.T) {
	a := newAgreement(t)
	for _, tc := range []struct {
		name, fed string
		make      func(t *testing.T, c *agreeCase)
	}{
		{"region is the node's", "seed-region", regionCase},
		{"policy beats last good", "seed-policy", policyCase},
		{"listener.yaml provision override", "seed-override", overrideCase},
		{"haproxy runtime api", "seed-haproxy", haproxyCase},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &agreeCase{fed: tc.fed, node: "n1", dir: t.TempDir()}
			tc.make(t, c)
			sub := &agreement{t: t, reg: a.reg}
			sub.run(c)
		})
	}
}

// regionCase: the node is in region eu; the binding is the region-less
// one. The listener renders with the node's region.
func regionCase(t *testing.T, c *agreeCase) {
	c.region = "eu"
	api := parseManifest(t, c.fed, `id: api
provides: {API_URL: "http://{HOST}:{PORT}"}`)
	web := parseManifest(t, c.fed, fmt.Sprintf(`id: web
requires: {API_URL: {key: API_URL}}
templates:
  conf:
    contents: "region={{ (patchbay).Region }} api={{ binding \"API_URL\" }}\n"
    destination: /etc/web/conf
    reload: %s`, yamlList(c.logCommand("reload-web-1"))))
	c.services = "  - service: web\n"
	c.before = &binding.Snapshot{Manifests: []manifest.Manifest{api, web}, Instances: []binding.Instance{instance(c.fed, "api", "a1", "", 8001, false, api.Provides)}}
	c.after = &binding.Snapshot{Manifests: []manifest.Manifest{api, web}, Instances: []binding.Instance{instance(c.fed, "api", "a1", "", 8002, false, api.Provides)}}
}

// policyCase: lb routes to api's only instance; api is unpublished while
// its instance lives, so policy withholds it and the select-all
// requirement is unresolved. The listener renders the file without it.
func policyCase(t *testing.T, c *agreeCase) {
	api := parseManifest(t, c.fed, `id: api
provides: {API_URL: "http://{HOST}:{PORT}"}`)
	lb := parseManifest(t, c.fed, fmt.Sprintf(`id: lb
requires: {API_URL: {key: API_URL, select: all}}
templates:
  upstreams:
    contents: "{{ range upstreams \"API_URL\" }}server {{ .HostPort }}\n{{ end }}"
    destination: /etc/lb/upstreams
    reload: %s`, yamlList(c.logCommand("reload-lb-1"))))
	c.services = "  - service: lb\n"
	in := instance(c.fed, "api", "a1", "", 8001, false, api.Provides)
	c.before = &binding.Snapshot{Manifests: []manifest.Manifest{api, lb}, Instances: []binding.Instance{in}}
	c.after = &binding.Snapshot{Manifests: []manifest.Manifest{lb}, Instances: []binding.Instance{in}}
}

// overrideCase: listener.yaml gives web its own provision command.
func overrideCase(t *testing.T, c *agreeCase) {
	api := parseManifest(t, c.fed, `id: api
provides: {API_URL: "http://{HOST}:{PORT}"}`)
	web := parseManifest(t, c.fed, fmt.Sprintf(`id: web
requires: {API_URL: {key: API_URL}}
provision: {command: %s}
templates:
  env:
    contents: "API_URL={{ binding \"API_URL\" }}\n"
    destination: /etc/web/env`, yamlList(c.logCommand("provision-web-manifest"))))
	c.services = fmt.Sprintf("  - service: web\n    provision: {command: %s}\n", yamlList(c.logCommand("provision-web-node")))
	c.before = &binding.Snapshot{Manifests: []manifest.Manifest{api, web}, Instances: []binding.Instance{instance(c.fed, "api", "a1", "", 8001, false, api.Provides)}}
	c.after = &binding.Snapshot{Manifests: []manifest.Manifest{api, web}, Instances: []binding.Instance{instance(c.fed, "api", "a1", "", 8002, false, api.Provides)}}
}

// haproxyCase: a server is added behind a real HAProxy whose runtime API
// the template enables: the listener adds it without a reload.
func haproxyCase(t *testing.T, c *agreeCase) {
	testcluster.RequirePrograms(t, "haproxy")
	socket := filepath.Join(c.dir, "admin.sock")
	web := parseManifest(t, c.fed, `id: web
provides: {WEB_URL: "http://{HOST}:{PORT}"}`)
	lb := parseManifest(t, c.fed, fmt.Sprintf(`id: lb
requires: {ROUTES: {key: WEB_URL, select: all}}
templates:
  haproxy:
    source: builtin:haproxy
    destination: /etc/haproxy/haproxy.cfg
    options: {listen: "%s", stats_socket: "%s", runtime_api: "true", check_inter: "5s"}
    reload: %s`, freeAddr(t), socket, yamlList(c.logCommand("reload-lb-1"))))
	c.services = "  - service: lb\n"
	w1 := instance(c.fed, "web", "w1", "", 8001, false, web.Provides)
	w2 := instance(c.fed, "web", "w2", "", 8002, false, web.Provides)
	c.before = &binding.Snapshot{Manifests: []manifest.Manifest{web, lb}, Instances: []binding.Instance{w1}}
	c.after = &binding.Snapshot{Manifests: []manifest.Manifest{web, lb}, Instances: []binding.Instance{w1, w2}}
	c.afterBefore = func(t *testing.T) { startHAProxy(t, filepath.Join(c.dir, "root", "etc/haproxy/haproxy.cfg"), socket) }
}

func yamlList(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = fmt.Sprintf("%q", a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startHAProxy runs a real HAProxy in master-worker mode on cfg until the
// test ends, once its stats socket answers.
func startHAProxy(t *testing.T, cfg, socket string) {
	t.Helper()
	if _, err := os.Stat(cfg); err != nil {
		t.Fatalf("the before run installed no haproxy.cfg: %v", err)
	}
	cmd := exec.Command("haproxy", "-W", "-db", "-f", cfg)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	testcluster.Eventually(t, 10*time.Second, "HAProxy's stats socket", func() bool {
		var d net.Dialer
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := d.DialContext(ctx, "unix", socket)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}
