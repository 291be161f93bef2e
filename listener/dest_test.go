package listener_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/manifest"
)

// fakeSystemctl puts a systemctl first on PATH that only logs its
// arguments, one call a line, to the file it returns.
func fakeSystemctl(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	log := filepath.Join(bin, "calls.log")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\n", log)
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

// settledRun waits for a run in which every one of services got past
// waiting for its binding, and returns it.
func settledRun(t *testing.T, n *pnode, services ...string) listener.RunReport {
	t.Helper()
	var r listener.RunReport
	testcluster.Eventually(t, provSettle, fmt.Sprintf("a run meets %v", services), func() bool {
		var ok bool
		r, ok = n.find(func(r listener.RunReport) bool {
			for _, s := range services {
				if sr := provService(r, s); sr == nil || sr.Result == listener.ResultSkipped {
					return false
				}
			}
			return true
		})
		return ok
	})
	return r
}

// With listener.yaml's default allow, a manifest cannot install a cron
// job or a systemd unit (and restart it with the default "systemctl
// restart {SERVICE}"): its service fails before anything of it is
// rendered or run, as for a refused command. A service writing in its
// own /etc directory, and the nginx and HAProxy builtins writing theirs,
// are applied with the same defaults.
func TestAllowRefusesDestinations(t *testing.T) {
	c := newCluster(t) // first: it may put the repository's bin on PATH, which t.Setenv then keeps
	calls := fakeSystemctl(t)
	c.startProvResolver(t)
	c.provPublish(t, `id: sdef
templates:
  cron: {contents: "* * * * * root touch /tmp/pwned\n", destination: /etc/cron.d/sdef}
  unit: {contents: "[Service]\nExecStart=/bin/sh -c id\n", destination: /etc/systemd/system/sdef.service, reload: [systemctl, restart, sdef]}`)
	c.provPublish(t, `id: sdef-ok
templates:
  env: {source: "builtin:env", destination: /etc/sdef-ok/env, reload: [systemctl, restart, sdef-ok]}`)
	c.provPublish(t, `id: sdef-lb
requires: {ROUTES: {key: "*_URL", select: all, min: 0}}
templates:
  nginx: {source: "builtin:nginx", destination: /etc/nginx/nginx.conf, min: 0, reload: [systemctl, reload, nginx]}
  haproxy: {source: "builtin:haproxy", destination: /etc/haproxy/haproxy.cfg, min: 0}`)
	n := c.startProvNode(t, "sdef-node", provNodeSpec{
		allow:    `control: "off"`, // listener.yaml's defaults
		services: "  - service: sdef\n  - service: sdef-ok\n  - service: sdef-lb\n",
	})
	r := settledRun(t, n, "sdef", "sdef-ok", "sdef-lb")
	evil := provService(r, "sdef")
	for _, want := range []string{
		`destination of template cron "/etc/cron.d/sdef" is not in allow.destinations`,
		`destination of template unit "/etc/systemd/system/sdef.service" is not in allow.destinations`,
	} {
		if evil.Result != listener.ResultFailed || !strings.Contains(evil.Reason, want) {
			t.Errorf("sdef: %s: %s; want failed, naming %s", evil.Result, evil.Reason, want)
		}
	}
	if len(evil.Templates) > 0 {
		t.Errorf("sdef: templates rendered: %+v", evil.Templates)
	}
	for _, p := range []string{"/etc/cron.d/sdef", "/etc/systemd/system/sdef.service"} {
		if _, err := os.Lstat(filepath.Join(n.root, p)); err == nil {
			t.Errorf("%s was installed", p)
		}
	}
	if fine := provService(r, "sdef-ok"); fine.Result != listener.ResultOK {
		t.Errorf("sdef-ok: %s: %s, want it applied with the default allow", fine.Result, fine.Reason)
	}
	if got := n.file("/etc/sdef-ok/env"); !strings.Contains(got, "sdef-ok: rendered by patchbay") {
		t.Errorf("/etc/sdef-ok/env holds %q, want the builtin env file", got)
	}
	if lb := provService(r, "sdef-lb"); lb.Result != listener.ResultOK {
		t.Errorf("sdef-lb: %s: %s, want its builtin load balancers applied with the default allow", lb.Result, lb.Reason)
	}
	for _, p := range []string{"/etc/nginx/nginx.conf", "/etc/haproxy/haproxy.cfg"} {
		if n.file(p) == "" {
			t.Errorf("%s not installed", p)
		}
	}
	log := provRead(calls)
	if strings.Contains(log, "restart sdef\n") || !strings.Contains(log, "restart sdef-ok\n") || !strings.Contains(log, "reload nginx\n") {
		t.Errorf("systemctl calls %q: want sdef-ok restarted and nginx reloaded, sdef not restarted", log)
	}
	if !n.logged("template destination refused", "service=sdef", "cron.d") {
		t.Error("no log line for the refused destination")
	}
}

// A destination climbing out of listener.yaml's root with ".." is refused,
// even where allow.destinations allows everything, and nothing is written
// outside root. The manifest is stored as a writer skipping validate would.
func TestDestinationEscapingRootRefused(t *testing.T) {
	c := newCluster(t)
	c.startProvResolver(t)
	c.provSetDatastore(t, "ESC_SECRET", "hunter2")
	for _, tc := range []struct{ name, allow string }{
		{"default allow", `control: "off"`},
		{"everything allowed", "control: \"off\"\n" + testAllowAll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "esc-" + strings.Fields(tc.name)[0]
			m, err := manifest.Parse("test.yaml", []byte(fmt.Sprintf(`id: %s
requires: {ESC_SECRET: {key: ESC_SECRET}}
templates:
  env: {source: "builtin:env", destination: /etc/%s/env}`, id, id)))
			if err != nil {
				t.Fatal(err)
			}
			tf := m.Templates["env"]
			tf.Destination = "/../escaped/env" // root is DIR/root: this is DIR/escaped/env
			m.Templates["env"] = tf
			if _, err := c.reg.Publish(t.Context(), m); err != nil {
				t.Fatal(err)
			}
			n := c.startProvNode(t, id+"-node", provNodeSpec{allow: tc.allow, services: "  - service: " + id + "\n"})
			r := settledRun(t, n, id)
			// The listener reads the stored manifest with publish's rules,
			// which refuse the destination first, naming it.
			if s := provService(r, id); s.Result != listener.ResultFailed || !strings.Contains(s.Reason, `"/../escaped/env" is not a clean`) {
				t.Errorf("%s: %s: %s; want failed, naming the destination", id, s.Result, s.Reason)
			}
			if _, err := os.Lstat(filepath.Join(n.dir, "escaped")); err == nil {
				t.Errorf("written outside root: %s", provRead(filepath.Join(n.dir, "escaped", "env")))
			}
		})
	}
}

// A directory on the way to a destination replaced by a symbolic link is
// not written through: the template fails, the link's target stays empty.
func TestDestinationThroughLinkRefused(t *testing.T) {
	c := newCluster(t)
	c.startProvResolver(t)
	c.provPublish(t, `id: sl-link
templates:
  env: {source: "builtin:env", destination: /etc/sl-link/env}`)
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "root", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "root", "etc", "sl-link")); err != nil {
		t.Fatal(err)
	}
	n := c.startProvNode(t, "sl-node", provNodeSpec{dir: dir, allow: `control: "off"`, services: "  - service: sl-link\n"})
	r := settledRun(t, n, "sl-link")
	s := provService(r, "sl-link")
	if tr := provTemplate(s, "env"); s.Result != listener.ResultFailed || tr == nil || !strings.Contains(tr.Error, "symbolic link") {
		t.Errorf("sl-link: %s: %s, template %+v; want failed naming the link", s.Result, s.Reason, tr)
	}
	if entries, _ := os.ReadDir(outside); len(entries) > 0 {
		t.Errorf("written through the link: %v", entries)
	}
}
