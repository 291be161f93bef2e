package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

func TestRenderCommand(t *testing.T) {
	consul := testcluster.StartConsul(t)
	addr := "--consul-addr=" + consul.Addr
	dir := t.TempDir()
	env, reloaded := filepath.Join(dir, "app.env"), filepath.Join(dir, "reloaded")
	app := `id: app
environment: {PORT: "8080"}
requires: {DATABASE_URL: "{PRIMARY_DATABASE_URL}"}
templates:
  env:
    source: builtin:env
    destination: ` + env + `
    reload: [touch, ` + reloaded + `]
    backup: true
`
	services := writeServices(t, map[string]string{
		"app":    app,
		"broken": "id: broken\nrequires: {X: \"{NOPE_URL}\"}\ntemplates: {env: {source: \"builtin:env\", destination: " + dir + "/broken.env}}\n",
		"lb":     "id: lb\nrequires: {ROUTES: {key: \"*_URL\", select: all, min: 0}}\ntemplates: {nginx: {source: \"builtin:nginx\", destination: " + dir + "/lb.conf}}\n",
	})
	for _, args := range [][]string{
		{"publish", addr, services},
		{"datastore", "set", addr, "PRIMARY_DATABASE_URL", "postgres://db/app?sslmode=require&x=$(id)"},
	} {
		if code, _, stderr := patchbay(t, args...); code != 0 {
			t.Fatalf("%v: %s", args, stderr)
		}
	}
	changed := strings.Replace(app, `PORT: "8080"`, `PORT: "9090"`, 1)

	steps := []struct {
		name    string
		args    []string
		publish string // manifest of app to publish first
		code    int
		stdout  string
		stderr  string
		check   func(t *testing.T)
	}{
		{name: "builtin to stdout", args: []string{"--template", "builtin:env", "--out", "-"}, stdout: `export DATABASE_URL='postgres://db/app?sslmode=require&x=$(id)'`},
		{name: "install", args: []string{"--template", "env"}, stderr: "installed " + env + " and reloaded", check: func(t *testing.T) {
			assertMode(t, env, 0o640)
			assertExists(t, reloaded, true)
			os.Remove(reloaded)
		}},
		{name: "unchanged: no reload", args: []string{"--template", "env", "--json"}, stdout: `"changed": false`, check: func(t *testing.T) {
			assertExists(t, reloaded, false)
		}},
		{name: "dry-run diff", publish: changed, args: []string{"--template", "env", "--diff", "--dry-run"}, stdout: "-export PORT='8080'\n+export PORT='9090'", check: func(t *testing.T) {
			assertContains(t, env, "PORT='8080'")
		}},
		{name: "install the change with a backup", args: []string{"--template", "env"}, stderr: "and reloaded", check: func(t *testing.T) {
			assertContains(t, env, "PORT='9090'")
			assertContains(t, env+".bak", "PORT='8080'")
		}},
		{name: "dry-run diff, no change", args: []string{"--template", "env", "--diff", "--dry-run"}, stderr: "no change: " + env + " is up to date\n"},
		{name: "unknown template", args: []string{"--template", "nope"}, code: exitUser, stderr: "its templates: [env]"},
		{name: "unknown builtin", args: []string{"--template", "builtin:nope"}, code: exitUser, stderr: "the builtins are dotenv, env, haproxy, json, nginx, systemd"},
		{name: "unresolved requirement", args: []string{"--service", "broken", "--template", "env"}, code: exitUser, stderr: "requirement unresolved: X", check: func(t *testing.T) {
			assertExists(t, filepath.Join(dir, "broken.env"), false)
		}},
		{name: "no upstreams", args: []string{"--service", "lb", "--template", "nginx"}, code: exitUser, stderr: "ROUTES has 0, the template needs at least 1", check: func(t *testing.T) {
			assertExists(t, filepath.Join(dir, "lb.conf"), false)
		}},
		{name: "unknown service", args: []string{"--service", "nope", "--template", "env"}, code: exitUser, stderr: "nope"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.publish != "" {
				if code, _, stderr := patchbay(t, "publish", addr, writeServices(t, map[string]string{"app": s.publish})); code != 0 {
					t.Fatalf("publish: %s", stderr)
				}
			}
			args := append([]string{"render", addr}, s.args...)
			if !strings.Contains(strings.Join(s.args, " "), "--service") {
				args = append(args, "--service", "app")
			}
			code, stdout, stderr := patchbay(t, args...)
			if code != s.code || !strings.Contains(stdout, s.stdout) || !strings.Contains(stderr, s.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, s.code, stdout, stderr)
			}
			if s.code != 0 && strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
				t.Errorf("error is not one line: %q", stderr)
			}
			if s.check != nil {
				s.check(t)
			}
		})
	}

	var res renderResult
	_, stdout, _ := patchbay(t, "render", addr, "--service", "app", "--template", "env", "--json")
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Destination != env || res.Changed {
		t.Fatalf("render --json: %q: %v", stdout, err)
	}

	// Back to PORT 8080 in Consul; env still has 9090.
	if code, _, stderr := patchbay(t, "publish", addr, writeServices(t, map[string]string{"app": app})); code != 0 {
		t.Fatalf("publish: %s", stderr)
	}
	t.Run("dry-run --json says changed without --diff", func(t *testing.T) {
		var res renderResult
		_, stdout, _ := patchbay(t, "render", addr, "--service", "app", "--template", "env", "--dry-run", "--json")
		if err := json.Unmarshal([]byte(stdout), &res); err != nil || !res.Changed || res.Reloaded {
			t.Fatalf("render --dry-run --json: %q: %v; want changed", stdout, err)
		}
		assertContains(t, env, "PORT='9090'")
	})
	t.Run("--config's root", func(t *testing.T) {
		root := filepath.Join(dir, "node-root")
		os.Remove(reloaded) // the last install's reload
		config := filepath.Join(dir, "listener.yaml")
		if err := os.WriteFile(config, []byte("node: n1\nroot: "+root+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var res renderResult
		code, stdout, stderr := patchbay(t, "render", addr, "--config", config, "--service", "app", "--template", "env", "--json")
		if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 0 {
			t.Fatalf("exit %d: %q: %v\n%s", code, stdout, err, stderr)
		}
		under := filepath.Join(root, env)
		if res.Destination != under || !res.Changed || res.Reloaded || !strings.Contains(res.NotReloaded, "give --reload to run it") {
			t.Errorf("result %+v, want installed at %s and not reloaded", res, under)
		}
		assertContains(t, under, "PORT='8080'")
		assertContains(t, env, "PORT='9090'") // the host's file is untouched
		assertExists(t, reloaded, false)
	})
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != want {
		t.Fatalf("%s: mode %v, want %v", path, st.Mode().Perm(), want)
	}
}

func assertExists(t *testing.T, path string, want bool) {
	t.Helper()
	if _, err := os.Stat(path); (err == nil) != want {
		t.Fatalf("%s exists: %v, want %v", path, err == nil, want)
	}
}

func assertContains(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), want) {
		t.Fatalf("%s does not contain %q:\n%s", path, want, b)
	}
}
