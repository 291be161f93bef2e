package resolver

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

func edgeList(g *Graph) []string {
	var out []string
	for _, e := range g.Edges() {
		out = append(out, e.From+" -"+e.Var+"/"+e.Key+"-> "+e.To)
	}
	return out
}

func TestGraphExamples(t *testing.T) {
	g := BuildGraph(loadExamples(t).Manifests)
	want := []string{
		"app-www -API_URL/READONLY_API_URL-> api",
		"lb-internal -ROUTES/API_URL-> api",
		"lb-internal -ROUTES/READONLY_API_URL-> api",
		"lb-internal -ROUTES/WWW_URL-> app-www",
		"lb-public -ROUTES/WWW_URL-> app-www", // api is private
	}
	if got := edgeList(g); !slices.Equal(got, want) {
		t.Fatalf("edges\n got %q\nwant %q", got, want)
	}
	if c := g.Cycles(); len(c) != 0 {
		t.Fatalf("cycles %v, want none", c)
	}
	order, err := g.Order()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"api", "app-www", "lb-internal", "lb-public"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

func cycleManifests() []manifest.Manifest {
	return []manifest.Manifest{
		svc("default", "a", false, map[string]manifest.Requirement{"B": one("B_URL")}, "A_URL"),
		svc("default", "b", false, map[string]manifest.Requirement{"C": one("{C_HOST}:{C_PORT}")}, "B_URL"),
		svc("default", "c", true, map[string]manifest.Requirement{"A": one("A_URL")}, "C_HOST", "C_PORT"),
		svc("default", "d", false, map[string]manifest.Requirement{"A": one("A_URL")}),
		svc("default", "lb", false, map[string]manifest.Requirement{"ROUTES": all("*_URL")}, "LB_URL"),
	}
}

func TestGraphCycles(t *testing.T) {
	tests := []struct {
		name   string
		ms     []manifest.Manifest
		cycles [][]string
		err    string
	}{
		{name: "three-cycle and self-loop", ms: cycleManifests(),
			cycles: [][]string{{"a", "b", "c", "a"}, {"lb", "lb"}},
			err:    "resolver: dependency cycle: a → b → c → a (and 1 more cycle); break it by making one requirement optional or removing it"},
		{name: "two-cycle", ms: []manifest.Manifest{
			svc("default", "y", false, map[string]manifest.Requirement{"X": one("X_URL")}, "Y_URL"),
			svc("default", "x", false, map[string]manifest.Requirement{"Y": one("Y_URL")}, "X_URL"),
		}, cycles: [][]string{{"x", "y", "x"}}, err: "resolver: dependency cycle: x → y → x; break it by making one requirement optional or removing it"},
		{name: "federations do not link", ms: []manifest.Manifest{
			svc("one", "x", false, map[string]manifest.Requirement{"Y": one("Y_URL")}, "X_URL"),
			svc("two", "y", false, map[string]manifest.Requirement{"X": one("X_URL")}, "Y_URL"),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := BuildGraph(tc.ms)
			if got := g.Cycles(); !slices.EqualFunc(got, tc.cycles, slices.Equal) {
				t.Fatalf("cycles %v, want %v", got, tc.cycles)
			}
			_, err := g.Order()
			if tc.err == "" {
				if err != nil {
					t.Fatalf("order: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrCycle) || err.Error() != tc.err {
				t.Fatalf("order error %v, want %q wrapping ErrCycle", err, tc.err)
			}
		})
	}
}

func TestGraphCycleIsShortestThroughFirstNode(t *testing.T) {
	// a → b → c → d → a, plus a shortcut c → a: the reported cycle is
	// a → b → c → a, a real path of the graph.
	ms := []manifest.Manifest{
		svc("default", "a", false, map[string]manifest.Requirement{"B": one("B_URL")}, "A_URL"),
		svc("default", "b", false, map[string]manifest.Requirement{"C": one("C_URL")}, "B_URL"),
		svc("default", "c", false, map[string]manifest.Requirement{"D": one("D_URL"), "A": one("A_URL")}, "C_URL"),
		svc("default", "d", false, map[string]manifest.Requirement{"A": one("A_URL")}, "D_URL"),
	}
	g := BuildGraph(ms)
	want := [][]string{{"a", "b", "c", "a"}}
	if got := g.Cycles(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("cycles %v, want %v", got, want)
	}
	for _, n := range g.Nodes() {
		if !n.OnCycle {
			t.Errorf("%s not marked on a cycle", n.Name)
		}
	}
}

func TestGraphNamesAndPublic(t *testing.T) {
	ms := []manifest.Manifest{
		svc("b", "lb", false, map[string]manifest.Requirement{"R": all("*_URL", public)}),
		svc("b", "web", true, nil, "WEB_URL"),
		svc("b", "api", false, nil, "API_URL"),
		svc("a", "web", true, nil, "WEB_URL"),
		svc("", "web", true, map[string]manifest.Requirement{"W": one("WEB_URL")}, "WEB_URL"),
	}
	g := BuildGraph(ms)
	var names []string
	for _, n := range g.Nodes() {
		names = append(names, n.Name)
	}
	if want := []string{"a/web", "b/api", "b/lb", "b/web", "default/web"}; !slices.Equal(names, want) {
		t.Fatalf("nodes %v, want %v", names, want)
	}
	want := []string{"b/lb -R/WEB_URL-> b/web", "default/web -W/WEB_URL-> default/web"}
	if got := edgeList(g); !slices.Equal(got, want) {
		t.Fatalf("edges %q, want %q", got, want)
	}
}

func TestGraphOrderTies(t *testing.T) {
	ms := []manifest.Manifest{
		svc("default", "z-app", false, map[string]manifest.Requirement{"DB": one("DB_URL"), "Q": one("Q_URL")}),
		svc("default", "queue", false, map[string]manifest.Requirement{"DB": one("DB_URL")}, "Q_URL"),
		svc("default", "db", false, nil, "DB_URL"),
		svc("default", "a-tool", false, nil),
		svc("default", "m-cache", false, nil, "CACHE_URL"),
	}
	order, err := BuildGraph(ms).Order()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a-tool", "db", "m-cache", "queue", "z-app"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

func TestGraphDOTGolden(t *testing.T) {
	multi := append(cycleManifests(), svc("pci", "vault", true, nil, "VAULT_URL"))
	examples := loadExamples(t)
	tests := []struct {
		file string
		ms   []manifest.Manifest
		ds   []binding.Datastore
	}{
		{"examples.dot", examples.Manifests, examples.Datastores},
		{"cycles.dot", multi, []binding.Datastore{ds("pci", "VAULT_URL", "https://vault"), ds("default", "UNUSED_URL", "x")}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var buf bytes.Buffer
			if err := BuildGraph(tt.ms, WithDatastores(tt.ds)).WriteDOT(&buf); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.file)
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("DOT differs from %s (run go test -update after checking):\n%s", golden, buf.String())
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestGraphDOTWriteError(t *testing.T) {
	err := BuildGraph(cycleManifests()).WriteDOT(failWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err %v, want the writer's error wrapped", err)
	}
}

func TestGraphJSON(t *testing.T) {
	tests := []struct {
		name string
		ms   []manifest.Manifest
		want string
	}{
		{"empty", nil, `{"nodes":[],"edges":[],"cycles":[]}`},
		{"self-loop", []manifest.Manifest{svc("default", "a", true, map[string]manifest.Requirement{"X": one("A_URL")}, "A_URL")},
			`{"nodes":[{"name":"a","federation":"default","service":"a","public":true,"on_cycle":true}],` +
				`"edges":[{"from":"a","to":"a","var":"X","key":"A_URL","on_cycle":true}],"cycles":[["a","a"]]}`},
		{"datastore", []manifest.Manifest{svc("default", "a", false, map[string]manifest.Requirement{"X": one("DB_URL"), "P": {Key: "*_URL", Select: "all", Public: true}})},
			`{"nodes":[{"name":"a","federation":"default","service":"a"},{"name":"datastore:DB_URL","federation":"default","datastore":"DB_URL"}],` +
				`"edges":[{"from":"a","to":"datastore:DB_URL","var":"X","key":"DB_URL"}],"cycles":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []GraphOption
			if tt.name == "datastore" {
				opts = append(opts, WithDatastores([]binding.Datastore{ds("default", "DB_URL", "postgres://db")}))
			}
			b, err := json.Marshal(BuildGraph(tt.ms, opts...))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("json\n got %s\nwant %s", b, tt.want)
			}
		})
	}
}

// TestGraphDatastoreEdgesFollowEngine: a datastore edge is drawn exactly
// where Resolve, with no live instance running, binds that datastore.
func TestGraphDatastoreEdgesFollowEngine(t *testing.T) {
	examples := loadExamples(t)
	stores := []binding.Datastore{ds("default", "DB_URL", "postgres://db"), ds("default", "HOST", "h"), ds("default", "PORT", "1")}
	tests := []struct {
		name string
		ms   []manifest.Manifest
		ds   []binding.Datastore
	}{
		{"examples", examples.Manifests, examples.Datastores},
		{"glob", []manifest.Manifest{svc("default", "lb", false, map[string]manifest.Requirement{"R": {Key: "*_URL", Select: "all"}})}, stores},
		{"key", []manifest.Manifest{svc("default", "a", false, map[string]manifest.Requirement{"X": one("DB_URL")})}, stores},
		{"template complete", []manifest.Manifest{svc("default", "a", false, map[string]manifest.Requirement{"T": one("{HOST}:{PORT}")})}, stores},
		{"template incomplete", []manifest.Manifest{svc("default", "a", false, map[string]manifest.Requirement{"T": one("{HOST}:{GONE}")})}, stores},
		{"public", []manifest.Manifest{svc("default", "a", false, map[string]manifest.Requirement{"X": one("DB_URL", func(r *manifest.Requirement) { r.Public = true })})}, stores},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, b := range Resolve(&binding.Snapshot{Manifests: tt.ms, Datastores: tt.ds}).Bindings {
				for v, bound := range b.Vars {
					for _, p := range bound.Providers {
						if p.Datastore {
							want = append(want, b.Service+" "+v+" "+p.Key)
						}
					}
				}
			}
			var got []string
			for _, e := range BuildGraph(tt.ms, WithDatastores(tt.ds)).Edges() {
				if strings.Contains(e.To, datastorePrefix) {
					got = append(got, e.From+" "+e.Var+" "+e.Key)
				}
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("datastore edges\n got %q\nwant %q (what Resolve binds)", got, want)
			}
		})
	}
}

// TestGraphLiveEdgesFollowEngine: an edge to a service is drawn only when
// the engine would admit an instance of it (judge): a template needs a
// provider of every key, a public-only requirement a public provider.
func TestGraphLiveEdgesFollowEngine(t *testing.T) {
	ms := []manifest.Manifest{
		svc("default", "a", false, map[string]manifest.Requirement{
			"T": one("{HOST}:{PORT}"),
			"P": one("B_URL", func(r *manifest.Requirement) { r.Public = true }),
			"X": one("B_URL"),
		}),
		svc("default", "half", true, nil, "HOST"),
		svc("default", "whole", false, nil, "HOST", "PORT", "B_URL"),
		svc("default", "pub", true, nil, "B_URL"),
	}
	var got []string
	for _, e := range BuildGraph(ms).Edges() {
		got = append(got, e.From+" "+e.Var+" "+e.To+" "+e.Key)
	}
	want := []string{"a P pub B_URL", "a X pub B_URL", "a T whole HOST", "a T whole PORT", "a X whole B_URL"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("edges\n got %q\nwant %q", got, want)
	}
}
