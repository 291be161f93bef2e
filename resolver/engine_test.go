package resolver

import (
	"hash/fnv"
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

func apiInstance(node, reg string) binding.Instance {
	in := inst("default", "api", node, reg, false)
	in.Provides = map[string]string{
		"API_URL":          "http://" + node + ":80/api",
		"READONLY_API_URL": "http://" + node + ":80/api/readonly",
	}
	return in
}

func wwwInstance(node, reg string) binding.Instance {
	in := inst("default", "app-www", node, reg, true)
	in.Provides = map[string]string{"WWW_URL": "http://" + node + ":8080/"}
	return in
}

func TestExamples(t *testing.T) {
	base := loadExamples(t)
	withAPI := base
	withAPI.Instances = []binding.Instance{apiInstance("n1", "us-1"), wwwInstance("n2", "us-1")}

	t.Run("api bound when an api instance lives", func(t *testing.T) {
		res := Resolve(&withAPI)
		b := mustLookup(t, res, "default", "app-www", "us-1")
		// via: local: the node's load balancer, with the api instance behind it
		if v := b.Vars["API_URL"]; !v.Resolved || v.Value != "http://127.0.0.1:17091/api/readonly" || v.Providers[0].Instance != "api@n1:80" {
			t.Fatalf("API_URL = %+v, want the local load balancer serving the api instance's READONLY_API_URL", v)
		}
		if v := b.Vars["DATABASE_URL"]; !v.Resolved || v.Value != "postgres://db.internal:5432/app" || !v.Providers[0].Datastore {
			t.Fatalf("DATABASE_URL = %+v, want the datastore", v)
		}
		if !b.Ready() || len(b.Unresolved) != 0 {
			t.Fatalf("app-www not ready: %+v", b.Unresolved)
		}
	})
	t.Run("without api the database still binds and API_URL says why", func(t *testing.T) {
		res := Resolve(&base)
		b := mustLookup(t, res, "default", "app-www", "")
		if v := b.Vars["DATABASE_URL"]; !v.Resolved || !v.Providers[0].Datastore {
			t.Fatalf("DATABASE_URL = %+v, want the datastore", v)
		}
		u, ok := unresolvedOf(b, "API_URL")
		want := "no live provider of READONLY_API_URL in federation default and no datastore"
		if !ok || u.Reason != want || u.Key != "READONLY_API_URL" {
			t.Fatalf("API_URL unresolved = %+v, %v; want reason %q", u, ok, want)
		}
		if b.Ready() {
			t.Fatal("app-www ready without an api")
		}
	})
	t.Run("load balancers", func(t *testing.T) {
		res := Resolve(&withAPI)
		pub := mustLookup(t, res, "default", "lb-public", "").Vars["ROUTES"]
		if got := instances(pub); !slices.Equal(got, []string{"app-www@n2:80/WWW_URL"}) || !pub.Resolved {
			t.Fatalf("lb-public ROUTES = %v, want only the public app-www", got)
		}
		internal := mustLookup(t, res, "default", "lb-internal", "").Vars["ROUTES"]
		want := []string{"api@n1:80/API_URL", "api@n1:80/READONLY_API_URL", "app-www@n2:80/WWW_URL"}
		if got := instances(internal); !slices.Equal(got, want) {
			t.Fatalf("lb-internal ROUTES = %v, want %v", got, want)
		}
		if internal.Value != "http://n1:80/api,http://n1:80/api/readonly,http://n2:8080/" {
			t.Fatalf("lb-internal value = %q", internal.Value)
		}
	})
	t.Run("empty public pool is allowed by min 0", func(t *testing.T) {
		res := Resolve(&base)
		v := mustLookup(t, res, "default", "lb-public", "").Vars["ROUTES"]
		if !v.Resolved || v.Value != "" || len(v.Providers) != 0 {
			t.Fatalf("lb-public ROUTES = %+v, want resolved and empty", v)
		}
	})
}

func TestBindingsPerRegion(t *testing.T) {
	snap := binding.Snapshot{
		Manifests: []manifest.Manifest{svc("default", "web", false, nil, "WEB_URL"), svc("default", "idle", false, nil)},
		Instances: []binding.Instance{
			inst("default", "web", "a", "us-1", false, "WEB_URL"),
			inst("default", "web", "b", "eu-1", false, "WEB_URL"),
			inst("default", "web", "c", "eu-1", false, "WEB_URL"),
			inst("default", "web", "d", "", false, "WEB_URL"),
		},
	}
	res := Resolve(&snap)
	var got []string
	for _, b := range res.Bindings {
		got = append(got, b.Service+"@"+b.Region)
		if b.Revision != 0 || b.Vars == nil {
			t.Errorf("%s@%s: revision %d, vars %v; want 0 and a non-nil map", b.Service, b.Region, b.Revision, b.Vars)
		}
	}
	want := []string{"idle@", "web@", "web@eu-1", "web@us-1"}
	if !slices.Equal(got, want) {
		t.Fatalf("bindings %v, want %v", got, want)
	}
	if _, ok := res.Lookup("default", "web", "ap-1"); ok {
		t.Fatal("Lookup found a region without instances")
	}
	if _, ok := res.Lookup("other", "web", ""); ok {
		t.Fatal("Lookup crossed federations")
	}
}

// rendezvous is an independent fnv-1a 64 of the documented input.
func rendezvous(service, reg, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(service + "\x00" + reg + "\x00" + id))
	return h.Sum64()
}

func TestRendezvous(t *testing.T) {
	var insts []binding.Instance
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		insts = append(insts, inst("default", "db", n, "us-1", false, "DB_URL"))
	}
	for _, consumer := range []string{"c1", "c2", "c3", "c4", "c5"} {
		for _, reg := range []string{"", "us-1"} {
			t.Run(consumer+"@"+reg, func(t *testing.T) {
				snap := binding.Snapshot{Instances: insts, Manifests: []manifest.Manifest{
					svc("default", consumer, false, map[string]manifest.Requirement{"DB": one("DB_URL")}),
					svc("default", "db", false, nil, "DB_URL"),
				}}
				if reg != "" {
					snap.Instances = append(slices.Clone(insts), inst("default", consumer, "z", reg, false))
				}
				want := slices.MaxFunc(insts, func(a, b binding.Instance) int {
					return cmpUint(rendezvous(consumer, reg, a.ID), rendezvous(consumer, reg, b.ID))
				})
				v := mustLookup(t, Resolve(&snap), "default", consumer, reg).Vars["DB"]
				if v.Providers[0].Instance != want.ID || v.Value != "DB_URL@"+want.Node {
					t.Fatalf("bound %s, want %s (highest score)", v.Providers[0].Instance, want.ID)
				}
			})
		}
	}
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ruleCase resolves var V of consumer "c" (federation "seatgeek" unless
// fed says otherwise) in region reg.
type ruleCase struct {
	name      string
	fed       string
	req       manifest.Requirement
	reg       string
	insts     []binding.Instance
	stores    []binding.Datastore
	providers []string // instances(v)
	value     string
	resolved  bool
	reason    string // the Unresolved reason, exactly; "" when none is listed
}

func (tc ruleCase) run(t *testing.T) {
	t.Helper()
	fed := tc.fed
	if fed == "" {
		fed = "seatgeek"
	}
	snap := binding.Snapshot{
		Manifests:  []manifest.Manifest{svc(fed, "c", false, map[string]manifest.Requirement{"V": tc.req})},
		Instances:  slices.Clone(tc.insts),
		Datastores: tc.stores,
	}
	if tc.reg != "" {
		snap.Instances = append(snap.Instances, inst(fed, "c", "self", tc.reg, false))
	}
	publishProviders(&snap)
	b := mustLookup(t, Resolve(&snap), fed, "c", tc.reg)
	v := b.Vars["V"]
	if got := instances(v); !slices.Equal(got, tc.providers) {
		t.Errorf("providers %v, want %v", got, tc.providers)
	}
	if v.Value != tc.value || v.Resolved != tc.resolved {
		t.Errorf("value %q resolved %v, want %q %v", v.Value, v.Resolved, tc.value, tc.resolved)
	}
	u, _ := unresolvedOf(b, "V")
	if u.Reason != tc.reason {
		t.Errorf("reason\n got %q\nwant %q", u.Reason, tc.reason)
	}
	if v.Select != tc.req.Select || v.Optional != tc.req.Optional {
		t.Errorf("select %q optional %v, want the requirement's", v.Select, v.Optional)
	}
}

func TestSelectOneRules(t *testing.T) {
	sg, def := "seatgeek", "default"
	tests := []ruleCase{
		{name: "only provider", req: one("K"), insts: []binding.Instance{inst(sg, "p", "1", "", false, "K")},
			providers: []string{"p@1:80/K"}, value: "K@1", resolved: true},
		{name: "never across federations", req: one("PRIMARY_DATABASE_URL"),
			insts:  []binding.Instance{inst(def, "p", "1", "", false, "PRIMARY_DATABASE_URL"), inst(def, "p", "2", "", false, "PRIMARY_DATABASE_URL")},
			stores: []binding.Datastore{ds("pci", "PRIMARY_DATABASE_URL", "x")},
			reason: "no live provider of PRIMARY_DATABASE_URL in federation seatgeek and no datastore; 2 exist in federation default and 1 in federation pci, which it cannot use"},
		{name: "one in another federation", req: one("K"), insts: []binding.Instance{inst(def, "p", "1", "", false, "K")},
			reason: "no live provider of K in federation seatgeek and no datastore; 1 exists in federation default, which it cannot use"},
		{name: "nothing anywhere", req: one("K"), reason: "no live provider of K in federation seatgeek and no datastore"},
		{name: "public takes public only", req: one("K", public),
			insts:     []binding.Instance{inst(sg, "p", "1", "", false, "K"), inst(sg, "q", "2", "", true, "K")},
			providers: []string{"q@2:80/K"}, value: "K@2", resolved: true},
		{name: "none public", req: one("K", public),
			insts:  []binding.Instance{inst(sg, "p", "1", "", false, "K"), inst(sg, "p", "2", "", false, "K")},
			reason: "2 providers of K exist but none is public (this requirement takes public services only)"},
		{name: "one private", req: one("K", public), insts: []binding.Instance{inst(sg, "p", "1", "", false, "K")},
			stores: []binding.Datastore{ds(sg, "K", "static")},
			reason: "1 provider of K exists but it is not public (this requirement takes public services only); the datastore cannot serve it, datastores are never public"},
		{name: "datastores are never public", req: one("K", public), stores: []binding.Datastore{ds(sg, "K", "static")},
			reason: "no live provider of K in federation seatgeek; the datastore cannot serve it, datastores are never public"},
		{name: "prefer-local takes local", req: one("K"), reg: "eu-1",
			insts:     []binding.Instance{inst(sg, "p", "1", "us-1", false, "K"), inst(sg, "p", "2", "eu-1", false, "K"), inst(sg, "p", "3", "us-1", false, "K")},
			providers: []string{"p@2:80/K"}, value: "K@2", resolved: true},
		{name: "prefer-local ignores a private local for a public requirement", req: one("K", public), reg: "eu-1",
			insts:     []binding.Instance{inst(sg, "p", "1", "us-1", true, "K"), inst(sg, "q", "2", "eu-1", false, "K")},
			providers: []string{"p@1:80/K"}, value: "K@1", resolved: true},
		{name: "prefer-local falls back to remote", req: one("K"), reg: "eu-1",
			insts:     []binding.Instance{inst(sg, "p", "1", "us-1", false, "K")},
			providers: []string{"p@1:80/K"}, value: "K@1", resolved: true},
		{name: "local-only refuses remote", req: one("K", region(manifest.RegionLocalOnly)), reg: "eu-1",
			insts:  []binding.Instance{inst(sg, "p", "1", "us-1", false, "K"), inst(sg, "p", "2", "us-1", false, "K"), inst(sg, "p", "3", "", false, "K")},
			reason: "no live provider of K in region eu-1 (region: local-only) and no datastore; 3 exist in other regions"},
		{name: "local-only falls back to the datastore", req: one("K", region(manifest.RegionLocalOnly)), reg: "eu-1",
			insts:     []binding.Instance{inst(sg, "p", "1", "us-1", false, "K")},
			stores:    []binding.Datastore{ds(sg, "K", "static")},
			providers: []string{"ds:K"}, value: "static", resolved: true},
		{name: "local-only without a region takes region-less providers", req: one("K", region(manifest.RegionLocalOnly)),
			insts:     []binding.Instance{inst(sg, "p", "1", "us-1", false, "K"), inst(sg, "p", "2", "", false, "K")},
			providers: []string{"p@2:80/K"}, value: "K@2", resolved: true},
		{name: "local-only without a region and none region-less", req: one("K", region(manifest.RegionLocalOnly)),
			insts:  []binding.Instance{inst(sg, "p", "1", "us-1", false, "K")},
			reason: "no live provider of K without a region (region: local-only, for consumers in no region) and no datastore; 1 exists in regions"},
		{name: "live beats datastore", req: one("K"), insts: []binding.Instance{inst(sg, "p", "1", "", false, "K")},
			stores:    []binding.Datastore{ds(sg, "K", "static")},
			providers: []string{"p@1:80/K"}, value: "K@1", resolved: true},
		{name: "datastore when nothing lives", req: one("K"), stores: []binding.Datastore{ds(sg, "K", "static"), ds(def, "K", "wrong")},
			providers: []string{"ds:K"}, value: "static", resolved: true},
		{name: "optional unresolved is not listed", req: one("K", optional)},
		{name: "invalid select", req: manifest.Requirement{Key: "K", Select: "some"},
			reason: `invalid requirement: select "some" is not one or all; fix the manifest (patchbay validate)`},
		{name: "glob needs select all", req: one("*_URL"),
			reason: `invalid requirement: key "*_URL" is a glob, which needs select: all; fix the manifest (patchbay validate)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func TestTemplateRules(t *testing.T) {
	sg := "seatgeek"
	tmpl := one("postgres://{DB_HOST}:{DB_PORT}/app")
	both := func(node, reg string, pub bool) binding.Instance {
		return inst(sg, "pg", node, reg, pub, "DB_HOST", "DB_PORT")
	}
	tests := []ruleCase{
		{name: "instance with every key", req: tmpl, insts: []binding.Instance{both("1", "", false), inst(sg, "h", "2", "", false, "DB_HOST")},
			providers: []string{"pg@1:80/DB_HOST", "pg@1:80/DB_PORT"}, value: "postgres://DB_HOST@1:DB_PORT@1/app", resolved: true},
		{name: "no instance has every key", req: tmpl,
			insts:  []binding.Instance{inst(sg, "h", "1", "", false, "DB_HOST"), inst(sg, "p", "2", "", false, "DB_PORT")},
			stores: []binding.Datastore{ds(sg, "DB_HOST", "h")},
			reason: "no instance provides all of DB_HOST, DB_PORT (2 instances have only some) and the datastores lack DB_PORT"},
		{name: "nobody has any key", req: tmpl, insts: []binding.Instance{inst("default", "pg", "1", "", false, "DB_HOST", "DB_PORT")},
			reason: "no live provider of DB_HOST+DB_PORT in federation seatgeek and no datastore; 1 exists in federation default, which it cannot use"},
		{name: "datastores with every key", req: tmpl, insts: []binding.Instance{inst(sg, "h", "1", "", false, "DB_HOST")},
			stores:    []binding.Datastore{ds(sg, "DB_HOST", "db"), ds(sg, "DB_PORT", "5432")},
			providers: []string{"ds:DB_HOST", "ds:DB_PORT"}, value: "postgres://db:5432/app", resolved: true},
		{name: "prefer-local among complete instances", req: tmpl, reg: "eu-1",
			insts:     []binding.Instance{both("1", "us-1", false), both("2", "eu-1", false), inst(sg, "h", "3", "eu-1", false, "DB_HOST")},
			providers: []string{"pg@2:80/DB_HOST", "pg@2:80/DB_PORT"}, value: "postgres://DB_HOST@2:DB_PORT@2/app", resolved: true},
		{name: "none public", req: one("{DB_HOST}:{DB_PORT}", public), insts: []binding.Instance{both("1", "", false)},
			reason: "1 provider of DB_HOST+DB_PORT exists but it is not public (this requirement takes public services only)"},
		{name: "unparsable", req: one("{DB_HOST"),
			reason: `invalid requirement: manifest: template syntax: "{" at offset 0 is never closed; write "{{" for a literal brace; fix the manifest (patchbay validate)`},
		{name: "select all with a template", req: all("{A}:{B}"),
			reason: "invalid requirement: a template binds one provider; use select: one; fix the manifest (patchbay validate)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func TestSelectAllRules(t *testing.T) {
	sg := "seatgeek"
	tests := []ruleCase{
		{name: "every provider sorted by instance", req: all("K"),
			insts:     []binding.Instance{inst(sg, "p", "2", "", false, "K"), inst(sg, "p", "1", "", false, "K"), inst(sg, "a", "9", "", false, "K")},
			providers: []string{"a@9:80/K", "p@1:80/K", "p@2:80/K"}, value: "K@9,K@1,K@2", resolved: true},
		{name: "glob over keys sorted by instance then key", req: all("*_URL"),
			insts: []binding.Instance{
				inst(sg, "web", "1", "", false, "WWW_URL", "ADMIN_URL", "PORT"),
				inst(sg, "api", "1", "", false, "API_URL"),
				inst("default", "x", "1", "", false, "X_URL"),
			},
			stores:    []binding.Datastore{ds(sg, "DS_URL", "static")},
			providers: []string{"api@1:80/API_URL", "web@1:80/ADMIN_URL", "web@1:80/WWW_URL"},
			value:     "API_URL@1,ADMIN_URL@1,WWW_URL@1", resolved: true},
		{name: "glob takes no datastore", req: all("*_URL"), stores: []binding.Datastore{ds(sg, "DS_URL", "static")},
			reason: "no live provider of *_URL in federation seatgeek"},
		{name: "datastore when no live provider of a plain key", req: all("K"), stores: []binding.Datastore{ds(sg, "K", "static")},
			providers: []string{"ds:K"}, value: "static", resolved: true},
		{name: "fewer than min lists providers", req: all("*_URL", minOf(2)),
			insts:     []binding.Instance{inst(sg, "p", "1", "", false, "A_URL")},
			providers: []string{"p@1:80/A_URL"},
			reason:    "1 live provider of *_URL, fewer than min 2"},
		{name: "fewer than min says what filters removed", req: all("K", minOf(3), public, region(manifest.RegionLocalOnly)), reg: "eu-1",
			insts: []binding.Instance{
				inst(sg, "p", "1", "eu-1", true, "K"), inst(sg, "q", "2", "eu-1", false, "K"),
				inst(sg, "p", "3", "us-1", true, "K"), inst(sg, "p", "4", "us-1", true, "K"),
			},
			providers: []string{"p@1:80/K"},
			reason:    "1 live provider of K, fewer than min 3; 2 more in other regions (region: local-only); 1 more not public"},
		{name: "none with min above one says the min", req: all("K", minOf(2)),
			reason: "no live provider of K in federation seatgeek and no datastore (select all needs at least 2)"},
		{name: "datastore below min", req: all("K", minOf(2)), stores: []binding.Datastore{ds(sg, "K", "static")},
			providers: []string{"ds:K"}, reason: "only the datastore provides K, fewer than min 2"},
		{name: "min 0 with nothing is resolved and empty", req: all("K", minOf(0)), resolved: true},
		{name: "prefer-local lists local only", req: all("K"), reg: "eu-1",
			insts:     []binding.Instance{inst(sg, "p", "1", "eu-1", false, "K"), inst(sg, "p", "2", "us-1", false, "K")},
			providers: []string{"p@1:80/K"}, value: "K@1", resolved: true},
		{name: "any lists all regions", req: all("K", region(manifest.RegionAny)), reg: "eu-1",
			insts:     []binding.Instance{inst(sg, "p", "1", "eu-1", false, "K"), inst(sg, "p", "2", "us-1", false, "K")},
			providers: []string{"p@1:80/K", "p@2:80/K"}, value: "K@1,K@2", resolved: true},
		{name: "public list", req: all("*_URL", public, minOf(0)),
			insts:     []binding.Instance{inst(sg, "p", "1", "", true, "A_URL"), inst(sg, "q", "1", "", false, "B_URL")},
			providers: []string{"p@1:80/A_URL"}, value: "A_URL@1", resolved: true},
		{name: "optional below min is not listed", req: all("K", optional),
			insts: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func TestReady(t *testing.T) {
	tests := []struct {
		vars map[string]binding.Var
		want bool
	}{
		{map[string]binding.Var{}, true},
		{map[string]binding.Var{"A": {Resolved: true}, "B": {Optional: true}}, true},
		{map[string]binding.Var{"A": {Resolved: true}, "B": {}}, false},
	}
	for i, tt := range tests {
		if got := (&binding.Binding{Vars: tt.vars}).Ready(); got != tt.want {
			t.Errorf("case %d: Ready() = %v, want %v", i, got, tt.want)
		}
	}
}

func TestUnresolvedSortedByVar(t *testing.T) {
	reqs := map[string]manifest.Requirement{}
	for _, v := range []string{"ZED", "ALPHA", "MID", "OPT"} {
		reqs[v] = one("NOPE_" + v)
	}
	reqs["OPT"] = one("NOPE", optional)
	snap := binding.Snapshot{Manifests: []manifest.Manifest{svc("default", "c", false, reqs)}}
	b := mustLookup(t, Resolve(&snap), "default", "c", "")
	var got []string
	for _, u := range b.Unresolved {
		got = append(got, u.Var)
	}
	if !slices.Equal(got, []string{"ALPHA", "MID", "ZED"}) {
		t.Fatalf("unresolved %v, want ALPHA MID ZED (sorted, optional left out)", got)
	}
	if v := b.Vars["OPT"]; v.Resolved || !v.Optional || v.Value != "" {
		t.Fatalf("optional var %+v", v)
	}
	if !strings.Contains(mustJSON(t, b), `"OPT":{"select":"one","value":"","optional":true,"resolved":false}`) {
		t.Fatalf("json %s", mustJSON(t, b))
	}
}

// The manifest is the truth about a service: instances of an unpublished
// service bind nothing, and a service made private leaves public-only
// requirements at once, though its instances registered as public.
func TestManifestIsTheTruth(t *testing.T) {
	lb := svc("default", "lb", false, map[string]manifest.Requirement{"ROUTES": all("*_URL", public, minOf(0))})
	app := svc("default", "app", false, map[string]manifest.Requirement{"DB": one("DB_URL")})
	tests := []struct {
		name      string
		manifests []manifest.Manifest
		wantLB    int
		wantDB    bool
	}{
		{"published and public", []manifest.Manifest{lb, app, svc("default", "web", true, nil, "WEB_URL"), svc("default", "db", false, nil, "DB_URL")}, 1, true},
		{"made private", []manifest.Manifest{lb, app, svc("default", "web", false, nil, "WEB_URL"), svc("default", "db", false, nil, "DB_URL")}, 0, true},
		{"unpublished", []manifest.Manifest{lb, app}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := binding.Snapshot{Manifests: tt.manifests, Instances: []binding.Instance{
				inst("default", "web", "w1", "", true, "WEB_URL"), // registered while public
				inst("default", "db", "d1", "", false, "DB_URL"),
			}}
			sortSnapshot(&snap)
			res := Resolve(&snap)
			if got := len(mustLookup(t, res, "default", "lb", "").Vars["ROUTES"].Providers); got != tt.wantLB {
				t.Errorf("lb routes = %d, want %d", got, tt.wantLB)
			}
			if got := mustLookup(t, res, "default", "app", "").Vars["DB"].Resolved; got != tt.wantDB {
				t.Errorf("app DB resolved = %v, want %v", got, tt.wantDB)
			}
		})
	}
}

// A listener renders its service's templates, which live in the manifest,
// so a manifest change must change the binding (and so reach listeners as
// an event) even when no value moves.
func TestBindingCarriesManifestDigest(t *testing.T) {
	base := func() manifest.Manifest {
		m := svc("default", "web", false, nil, "WEB_URL")
		m.Templates = map[string]manifest.TemplateFile{"env": {Source: "builtin:env", Destination: "/etc/web/env"}}
		return m
	}
	digest := func(m manifest.Manifest) string {
		t.Helper()
		res := Resolve(&binding.Snapshot{Manifests: []manifest.Manifest{m}, Instances: []binding.Instance{inst("default", "web", "a", "us-1", false, "WEB_URL")}})
		var got []string
		for _, b := range res.Bindings {
			got = append(got, b.Manifest)
		}
		if len(got) != 2 || got[0] != got[1] || got[0] == "" {
			t.Fatalf("digests of the bindings for region \"\" and us-1: %q; want two equal, non-empty", got)
		}
		return got[0]
	}
	moved := base()
	moved.Templates = map[string]manifest.TemplateFile{"env": {Source: "builtin:env", Destination: "/etc/web/web.env"}}
	cases := []struct {
		name string
		m    manifest.Manifest
		same bool
	}{
		{"the same manifest", base(), true},
		{"a template moved", moved, false},
		{"an environment value", func() manifest.Manifest { m := base(); m.Environment = map[string]string{"PORT": "81"}; return m }(), false},
	}
	want := digest(base())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := digest(tc.m); (got == want) != tc.same {
				t.Errorf("digest %s vs %s: same = %v, want %v", got, want, got == want, tc.same)
			}
		})
	}
}
