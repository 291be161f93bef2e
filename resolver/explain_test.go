package resolver

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

// verdicts renders candidates as "instance/key kept|dropped: reason".
func verdicts(x *Explanation) []string {
	var out []string
	for _, c := range x.Candidates {
		who := c.Federation + ":" + c.Instance + "/" + c.Key
		if c.Datastore {
			who = c.Federation + ":ds/" + c.Key
		}
		state := "dropped"
		if c.Kept {
			state = "kept"
		}
		out = append(out, who+" "+state+": "+c.Reason)
	}
	return out
}

func TestExplainExamples(t *testing.T) {
	snap := loadExamples(t)
	other := apiInstance("n9", "us-1")
	other.Federation, other.ID = "seatgeek", "api@n9:80"
	snap.Instances = []binding.Instance{apiInstance("n1", "us-1"), other, wwwInstance("n2", "us-1")}
	publishProviders(&snap) // api is published in seatgeek too
	sortSnapshot(&snap)

	x, err := Explain(&snap, "default", "app-www", "us-1", "API_URL")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"default:api@n1:80/READONLY_API_URL kept: served: a server of the node's local load balancer (via: local)",
		"seatgeek:api@n9:80/READONLY_API_URL dropped: other federation seatgeek",
	}
	if got := verdicts(x); !slices.Equal(got, want) {
		t.Fatalf("candidates\n got %q\nwant %q", got, want)
	}
	if x.Result.Value != "http://127.0.0.1:17091/api/readonly" || len(x.Winners) != 1 || x.Winners[0].Instance != "api@n1:80" {
		t.Fatalf("result %+v winners %+v", x.Result, x.Winners)
	}

	x, err = Explain(&snap, "", "app-www", "", "DATABASE_URL")
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"default:ds/PRIMARY_DATABASE_URL kept: chosen: no live provider remains, so the datastore serves"}
	if got := verdicts(x); !slices.Equal(got, want) || x.Federation != "default" {
		t.Fatalf("candidates %q, federation %q", got, x.Federation)
	}
}

func TestExplainReasons(t *testing.T) {
	sg := "seatgeek"
	tests := []struct {
		name   string
		req    manifest.Requirement
		reg    string
		insts  []binding.Instance
		stores []binding.Datastore
		want   []string
		reason string
	}{
		{name: "rendezvous, datastore and federation", req: one("K"),
			insts:  []binding.Instance{inst(sg, "p", "1", "", false, "K"), inst(sg, "p", "2", "", false, "K"), inst("default", "p", "3", "", false, "K")},
			stores: []binding.Datastore{ds(sg, "K", "static"), ds("default", "K", "x")},
			want: []string{
				"seatgeek:p@1:80/K kept: chosen: highest rendezvous score",
				"seatgeek:p@2:80/K dropped: lower rendezvous score",
				"seatgeek:ds/K dropped: live providers beat datastores",
				"default:p@3:80/K dropped: other federation default",
				"default:ds/K dropped: other federation default",
			}},
		{name: "public and local-only", req: one("K", public, region(manifest.RegionLocalOnly)), reg: "eu-1",
			insts:  []binding.Instance{inst(sg, "p", "1", "eu-1", false, "K"), inst(sg, "q", "2", "us-2", true, "K"), inst(sg, "q", "3", "", true, "K")},
			stores: []binding.Datastore{ds(sg, "K", "static")},
			want: []string{
				"seatgeek:p@1:80/K dropped: not public",
				"seatgeek:q@2:80/K dropped: region us-2, not local (local-only)",
				"seatgeek:q@3:80/K dropped: no region, not local (local-only)",
				"seatgeek:ds/K dropped: datastores are never public",
			},
			reason: "no live provider of K in region eu-1 (region: local-only); the datastore cannot serve it, datastores are never public; 2 exist in other regions"},
		{name: "prefer-local", req: one("K"), reg: "eu-1",
			insts: []binding.Instance{inst(sg, "p", "1", "eu-1", false, "K"), inst(sg, "p", "2", "us-2", false, "K")},
			want: []string{
				"seatgeek:p@1:80/K kept: chosen: highest rendezvous score",
				"seatgeek:p@2:80/K dropped: region us-2, not local (prefer-local, and region eu-1 has providers)",
			}},
		{name: "template", req: one("{DB_HOST}:{DB_PORT}"),
			insts:  []binding.Instance{inst(sg, "h", "1", "", false, "DB_HOST")},
			stores: []binding.Datastore{ds(sg, "DB_HOST", "db")},
			want: []string{
				"seatgeek:h@1:80/DB_HOST dropped: lacks DB_PORT of the template",
				"seatgeek:ds/DB_HOST dropped: the datastores lack DB_PORT",
			},
			reason: "no instance provides all of DB_HOST, DB_PORT (1 instance has only some) and the datastores lack DB_PORT"},
		{name: "select all glob", req: all("*_URL"),
			insts:  []binding.Instance{inst(sg, "p", "1", "", false, "B_URL", "A_URL"), inst(sg, "p", "0", "", false, "C_URL")},
			stores: []binding.Datastore{ds(sg, "D_URL", "static")},
			want: []string{
				"seatgeek:p@0:80/C_URL kept: listed: select all takes every admitted provider",
				"seatgeek:p@1:80/A_URL kept: listed: select all takes every admitted provider",
				"seatgeek:p@1:80/B_URL kept: listed: select all takes every admitted provider",
				"seatgeek:ds/D_URL dropped: a glob takes live providers only",
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := binding.Snapshot{
				Manifests:  []manifest.Manifest{svc(sg, "c", false, map[string]manifest.Requirement{"V": tc.req})},
				Instances:  tc.insts,
				Datastores: tc.stores,
			}
			publishProviders(&snap)
			x, err := Explain(&snap, sg, "c", tc.reg, "V")
			if err != nil {
				t.Fatal(err)
			}
			if got := verdicts(x); !slices.Equal(got, tc.want) {
				t.Errorf("candidates\n got %q\nwant %q", got, tc.want)
			}
			if x.Reason != tc.reason {
				t.Errorf("reason\n got %q\nwant %q", x.Reason, tc.reason)
			}
			var kept []binding.Provider
			for _, c := range x.Candidates {
				if c.Kept {
					kept = append(kept, c.Provider)
				}
			}
			if !slices.Equal(kept, x.Winners) && !(len(kept) == 0 && len(x.Winners) == 0) {
				t.Errorf("kept %+v, winners %+v", kept, x.Winners)
			}
		})
	}
}

func TestExplainErrors(t *testing.T) {
	snap := loadExamples(t)
	snap.Manifests = append(snap.Manifests, svc("pci", "vault", false, nil))
	tests := []struct {
		fed, service, v string
		is              error
		msg             string
	}{
		{"default", "app-ww", "API_URL", ErrUnknownService, `resolver: unknown service "app-ww" in federation default; did you mean "app-www"?`},
		{"default", "vault", "X", ErrUnknownService, `resolver: unknown service "vault" in federation default; it exists in federation pci`},
		{"default", "zzzzzzzz", "X", ErrUnknownService, `resolver: unknown service "zzzzzzzz" in federation default`},
		{"default", "app-www", "API_URLS", ErrUnknownVar, `resolver: unknown variable "API_URLS" of service app-www; it requires API_URL, DATABASE_URL (did you mean "API_URL"?)`},
		{"pci", "vault", "X", ErrUnknownVar, `resolver: unknown variable "X" of service vault; it requires nothing`},
	}
	for _, tt := range tests {
		t.Run(tt.service+"/"+tt.v, func(t *testing.T) {
			x, err := Explain(&snap, tt.fed, tt.service, "", tt.v)
			if !errors.Is(err, tt.is) || x != nil {
				t.Fatalf("err %v, explanation %v; want %v", err, x, tt.is)
			}
			if err.Error() != tt.msg {
				t.Fatalf("message\n got %q\nwant %q", err.Error(), tt.msg)
			}
		})
	}
}

func TestExplainInvalidRequirement(t *testing.T) {
	snap := binding.Snapshot{Manifests: []manifest.Manifest{
		svc("default", "c", false, map[string]manifest.Requirement{"V": {Key: "K", Select: "many"}}),
	}}
	x, err := Explain(&snap, "default", "c", "", "V")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(x.Reason, "invalid requirement: select \"many\"") || len(x.Candidates) != 0 {
		t.Fatalf("reason %q candidates %v", x.Reason, x.Candidates)
	}
}
