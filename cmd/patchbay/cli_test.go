package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// A missing argument is named as in the usage line, and an unknown
// subcommand of a group fails instead of printing help and exiting 0.
func TestCommandLineMistakes(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stderr []string
	}{
		{[]string{"datastore", "get"}, 1, []string{"missing KEY", "Usage: patchbay datastore get KEY"}},
		{[]string{"datastore", "set", "CACHE_URL"}, 1, []string{"missing VALUE", "Usage: patchbay datastore set KEY VALUE"}},
		{[]string{"datastore", "rm", "A_URL", "B_URL"}, 1, []string{`unexpected argument "B_URL": patchbay datastore rm takes KEY`}},
		{[]string{"datastore", "lsit"}, 1, []string{`unknown command "lsit" for "patchbay datastore" (did you mean "list"?)`}},
		{[]string{"rollout", "resume"}, 1, []string{"missing GROUP"}},
		{[]string{"rollout", "halt", "www"}, 1, []string{`unknown command "halt" for "patchbay rollout"`}},
		{[]string{"unpublish"}, 1, []string{"missing SERVICE"}},
		{[]string{"register", "--address", "127.0.0.1", "--port", "1"}, 1, []string{"missing SERVICE"}},
		{[]string{"explain", "app-www"}, 1, []string{"missing VAR", "Usage: patchbay explain SERVICE VAR"}},
		{[]string{"explain"}, 1, []string{"missing SERVICE VAR", "Usage: patchbay explain SERVICE VAR"}},
		{[]string{"resolve"}, 1, []string{"missing SERVICE", "Usage: patchbay resolve SERVICE"}},
		{[]string{"impact", "node"}, 1, []string{"missing NODE|ID", "Usage: patchbay impact node NODE | impact instance ID"}},
		{[]string{"plan"}, 1, []string{"missing PATH\n", "Usage: patchbay plan PATH..."}},
		{[]string{"validate"}, 1, []string{"missing PATH\n", "Usage: patchbay validate PATH..."}},
		{[]string{"publish"}, 1, []string{"missing PATH\n", "Usage: patchbay publish PATH..."}},
		{[]string{"dev", "node", "api-2"}, 1, []string{"missing SERVICE[:PORT]\n", "Usage: patchbay dev node NAME SERVICE[:PORT]..."}},
		{[]string{"version", "now"}, 1, []string{`unexpected argument "now": patchbay version takes no arguments`, "Usage: patchbay version"}},
		{[]string{"status", "web-1"}, 1, []string{`unexpected argument "web-1": patchbay status takes no arguments`}},
		{[]string{"datastore"}, 0, []string{}}, // the group alone: its help
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := patchbay(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if code == 0 && !strings.Contains(stdout, "Available Commands:") {
				t.Errorf("no help:\n%s", stdout)
			}
		})
	}
}

// Every command a script calls prints JSON with --json.
func TestScriptCommandsJSON(t *testing.T) {
	t.Setenv("PATCHBAY_CONTROL", "")
	consul := testcluster.StartConsul(t)
	addr := "--consul-addr=" + consul.Addr
	control := startControlServer(t, &recordingController{})
	dir := writeServices(t, map[string]string{"web": "id: web\nprovides: {WEB_URL: \"http://{HOST}:{PORT}\"}\n"})
	if code, _, stderr := patchbay(t, "publish", addr, dir); code != 0 {
		t.Fatal(stderr)
	}
	tests := []struct {
		args []string
		want string // the JSON output, compacted
	}{
		{[]string{"datastore", "set", addr, "--json", "CACHE_URL", "redis://cache"}, `{"federation":"default","key":"CACHE_URL","changed":true}`},
		{[]string{"datastore", "set", addr, "--json", "CACHE_URL", "redis://cache"}, `{"federation":"default","key":"CACHE_URL","changed":false}`},
		{[]string{"datastore", "set", addr, "A_URL", "postgres://u:secret@db"}, ``},
		{[]string{"datastore", "list", addr, "--json"}, `[{"federation":"default","key":"A_URL"},{"federation":"default","key":"CACHE_URL"}]`},
		{[]string{"datastore", "list", addr, "--json", "--values"}, `[{"federation":"default","key":"A_URL","value":"postgres://u:secret@db"},{"federation":"default","key":"CACHE_URL","value":"redis://cache"}]`},
		{[]string{"datastore", "rm", addr, "--json", "CACHE_URL"}, `{"federation":"default","key":"CACHE_URL","changed":true}`},
		{[]string{"unpublish", addr, "--json", "web"}, `{"federation":"default","result":"unpublished","service":"web"}`},
		{[]string{"rollout", "resume", addr, "--json", "www"}, `{"federation":"default","group":"www","was_halted":false,"announced":false}`},
		{[]string{"pause", "--json", "--control", control}, `{"action":"pause","control":"` + control + `","message":"paused the listener at ` + control + `; triggers are remembered until resume"}`},
		{[]string{"resume", "--json", "--control", control}, `{"action":"resume","control":"` + control + `","message":"resumed the listener at ` + control + `; a provision run is queued to catch up"}`},
		{[]string{"provision", "--json", "--control", control}, `{"action":"provision","control":"` + control + `","message":"asked the listener at ` + control + ` for a provision run; it starts as soon as the throttle allows"}`},
	}
	for _, tt := range tests {
		code, stdout, stderr := patchbay(t, tt.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", tt.args, code, stderr)
		}
		if tt.want == "" {
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(stdout), &v); err != nil {
			t.Fatalf("%v: not JSON (%v):\n%s", tt.args, err, stdout)
		}
		if got, _ := json.Marshal(v); string(got) != normalJSON(t, tt.want) {
			t.Errorf("%v:\n got %s\nwant %s", tt.args, got, normalJSON(t, tt.want))
		}
	}
	if code, stdout, _ := patchbay(t, "datastore", "list", addr); stdout != "A_URL\n" || code != 0 {
		t.Errorf("datastore list printed %q (exit %d), want the keys without values", stdout, code)
	}

	t.Run("register prints a JSON line a step", func(t *testing.T) {
		if code, _, stderr := patchbay(t, "publish", addr, dir); code != 0 {
			t.Fatal(stderr)
		}
		port := httpBackend(t)
		p := startPatchbay(t, "register", addr, "--json", "web", "--node", "web-9", "--address", "127.0.0.1", "--port", port)
		p.waitLine(t, `{"event":"registering","instance":"web@web-9:`+port+`","federation":"default"}`, 10*time.Second)
		p.waitLine(t, `{"event":"registered","instance":"web@web-9:`+port+`","federation":"default","address":"127.0.0.1","port":`+port+`}`, 15*time.Second)
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.waitLine(t, `{"event":"deregistered","instance":"web@web-9:`+port+`","federation":"default"}`, 10*time.Second)
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("exit: %v", err)
		}
	})
}

// normalJSON compacts a JSON text with its object keys sorted.
func normalJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad expectation %s: %v", s, err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}
