package templates

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

var update = flag.Bool("update", false, "rewrite golden files")

// hostile holds everything a quoting bug would let through: a newline to
// start a new assignment, both quotes, command substitution, a comment, a
// backslash, an expansion, a carriage return, a tab and multi-byte UTF-8.
const hostile = "first line\nsecond 'single' \"double\" $(id) `id` # not a comment \\ back $HOME \r\tü ✓"

// goldenExt gives each builtin's golden file the extension editors and
// reviewers expect; others get NAME.out.
var goldenExt = map[string]string{
	"nginx":   "nginx.conf",
	"haproxy": "haproxy.cfg",
	"env":     "env.sh",
	"dotenv":  "dotenv.env",
	"systemd": "systemd.env",
	"json":    "json.json",
}

func goldenFile(name string) string {
	if f, ok := goldenExt[name]; ok {
		return filepath.Join("testdata", "golden", f)
	}
	return filepath.Join("testdata", "golden", name+".out")
}

// fixture is the Data every builtin is rendered from: it holds each kind of
// requirement a service can have. runDir is where the load balancers' pid
// and error log go; the golden files use a fixed one.
func fixture(runDir string) Data {
	web := func(node, url string) binding.Provider {
		return binding.Provider{
			Key: "WWW_URL", Value: url, Service: "web", Instance: "web@" + node + ":8080",
			Node: node, Address: "10.0.0.9", Port: 8080, Region: "eu", Public: true,
		}
	}
	routes := []binding.Provider{ // as the resolver sorts them: by (Instance, Key)
		{
			Key: "API_URL", Value: "http://10.0.1.4:9000/v1/", Service: "api", Instance: "api@n4:9000",
			Node: "n4", Address: "10.0.1.4", Port: 9000, Region: "eu",
		},
		// A datastore behind TLS, on the scheme's port, with an escaped path.
		{Key: "LEGACY_URL", Value: "https://192.0.2.10/old%25api/", Datastore: true},
		web("n1", "http://10.0.0.1:8080"),
		web("n2", "http://10.0.0.2:8080/"),
		web("n3", "http://[fd00::3]:8080"),
	}
	var values []string
	for _, p := range routes {
		values = append(values, p.Value)
	}
	return Data{
		Service:     "app",
		Federation:  "default",
		Environment: map[string]string{"PORT": "8080", "ENV": "production"},
		Binding: &binding.Binding{
			Federation: "default", Service: "app", Revision: 42,
			Vars: map[string]binding.Var{
				"DATABASE_URL": {
					Select: "one", Value: "postgres://db.internal:5432/app?sslmode=require", Resolved: true,
					Providers: []binding.Provider{{Key: "DATABASE_URL", Value: "postgres://db.internal:5432/app?sslmode=require", Datastore: true}},
				},
				"CACHE_URL": {Select: "one", Optional: true},
				"ROUTES": {
					Select: "all", Value: strings.Join(values, ","), Resolved: true, Providers: routes,
				},
				"MOTD": {
					Select: "one", Value: hostile, Resolved: true,
					Providers: []binding.Provider{{Key: "MOTD", Value: hostile, Datastore: true}},
				},
			},
		},
		Options: map[string]string{
			"listen":    "127.0.0.1:18080",
			"domain":    "example.test",
			"pid":       filepath.Join(runDir, "nginx.pid"),
			"error_log": filepath.Join(runDir, "error.log"),
		},
		Min: 1,
	}
}

func renderBuiltin(t *testing.T, name string, d Data) []byte {
	t.Helper()
	contents, err := Builtin(name)
	if err != nil {
		t.Fatal(err)
	}
	out, err := NewRenderer().Render(context.Background(), name, contents, d)
	if err != nil {
		t.Fatalf("render builtin:%s: %v", name, err)
	}
	return out
}

func TestBuiltinGolden(t *testing.T) {
	for _, name := range Builtins() {
		t.Run(name, func(t *testing.T) {
			got := renderBuiltin(t, name, fixture("/tmp/patchbay-golden"))
			golden := goldenFile(name)
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./templates -run Golden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("builtin:%s differs from %s (run go test ./templates -run Golden -update after checking):\n%s", name, golden, got)
			}
		})
	}
}

func TestBuiltinUnknown(t *testing.T) {
	if _, err := Builtin("nope"); err == nil {
		t.Fatal("Builtin(nope) succeeded")
	}
}

// TestBuiltinConfigCheck runs the load balancers' own config checks on the
// rendered files: a golden file that only looks right is not enough.
func TestBuiltinConfigCheck(t *testing.T) {
	// -e keeps nginx from opening its compiled-in error log before it has
	// read the config.
	nginx := func(file, dir string) []string {
		return []string{"-t", "-q", "-e", filepath.Join(dir, "startup.log"), "-c", file}
	}
	haproxy := func(file, _ string) []string { return []string{"-c", "-q", "-f", file} }
	// noRoutes is a load balancer allowed to start before any backend.
	noRoutes := func(d Data) Data {
		d.Min = 0
		d.Binding.Vars["ROUTES"] = binding.Var{Select: "all", Resolved: true}
		return d
	}
	same := func(d Data) Data { return d }
	tests := []struct {
		name, builtin string
		args          func(file, dir string) []string
		data          func(Data) Data
	}{
		{"nginx", "nginx", nginx, same},
		{"nginx no routes", "nginx", nginx, noRoutes},
		{"haproxy", "haproxy", haproxy, same},
		{"haproxy no routes", "haproxy", haproxy, noRoutes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := testcluster.RequirePrograms(t, tt.builtin)[tt.builtin]
			dir := t.TempDir()
			file := filepath.Join(dir, goldenExt[tt.builtin])
			config := renderBuiltin(t, tt.builtin, tt.data(fixture(dir)))
			if err := os.WriteFile(file, config, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, tt.args(file, dir)...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s rejects builtin:%s: %v\n%s\nconfig:\n%s", tt.builtin, tt.builtin, err, out, config)
			}
		})
	}
}
