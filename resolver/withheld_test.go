package resolver

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

// withheldOfVar names v's withheld providers as "instance/key reason".
func withheldOfVar(v binding.Var) []string {
	var out []string
	for _, w := range v.Withheld.List() {
		out = append(out, w.Instance+"/"+w.Key+" "+w.Reason)
	}
	return out
}

func TestWithheldByPolicy(t *testing.T) {
	lb := func(req manifest.Requirement, templateMin ...int) manifest.Manifest {
		m := svc("default", "lb", true, map[string]manifest.Requirement{"ROUTES": req, "DB": one("DB_URL", optional)}, "LB_URL")
		for i, n := range templateMin {
			m.Templates = map[string]manifest.TemplateFile{fmt.Sprint("t", i): {Min: &n}}
		}
		return m
	}
	lbPrivate := func(req manifest.Requirement) manifest.Manifest {
		m := lb(req)
		m.Public = false
		return m
	}
	webPublic := svc("default", "web", true, nil, "WEB_URL")
	webPrivate := svc("default", "web", false, nil, "WEB_URL")
	web := inst("default", "web", "1", "", true, "WEB_URL")
	api := inst("default", "api", "2", "", true, "API_URL")
	apiPublic := svc("default", "api", true, nil, "API_URL")
	for _, tc := range []struct {
		name      string
		manifests []manifest.Manifest
		instances []binding.Instance
		resolved  bool
		want      []string
	}{
		{
			name:      "made private",
			manifests: []manifest.Manifest{lb(all("*_URL", public)), webPrivate},
			instances: []binding.Instance{web},
			want:      []string{"web@1:80/WEB_URL not public"},
		},
		{
			name:      "private provider of an exact key",
			manifests: []manifest.Manifest{lb(all("WEB_URL", public)), webPrivate},
			instances: []binding.Instance{web},
			want:      []string{"web@1:80/WEB_URL not public"},
		},
		{
			name:      "unpublished",
			manifests: []manifest.Manifest{lb(all("*_URL", public))},
			instances: []binding.Instance{web},
			want:      []string{"web@1:80/WEB_URL unpublished"},
		},
		{
			name:      "moved to another federation",
			manifests: []manifest.Manifest{lb(all("*_URL", public)), svc("other", "web", true, nil, "WEB_URL")},
			instances: []binding.Instance{inst("other", "web", "1", "", true, "WEB_URL")},
			want:      []string{"web@1:80/WEB_URL other federation"},
		},
		{
			name:      "unpublished in another federation",
			manifests: []manifest.Manifest{lb(all("*_URL", public))},
			instances: []binding.Instance{inst("other", "web", "1", "", true, "WEB_URL")},
			want:      []string{"web@1:80/WEB_URL other federation"},
		},
		{
			name:      "a private provider is no policy matter without public",
			manifests: []manifest.Manifest{lb(all("*_URL")), webPrivate},
			instances: []binding.Instance{web},
			resolved:  true,
		},
		{
			name:      "died: nothing live is withheld",
			manifests: []manifest.Manifest{lb(all("*_URL", public)), webPublic},
		},
		{
			name:      "the load balancer's own instances are no upstream",
			manifests: []manifest.Manifest{lbPrivate(all("*_URL", public)), webPrivate},
			instances: []binding.Instance{inst("default", "lb", "9", "", false, "LB_URL"), web},
			want:      []string{"web@1:80/WEB_URL not public"},
		},
		{
			name:      "enough providers: nothing listed",
			manifests: []manifest.Manifest{lb(all("*_URL", public)), webPrivate, apiPublic},
			instances: []binding.Instance{web, api},
			resolved:  true,
		},
		{
			name:      "below min",
			manifests: []manifest.Manifest{lb(all("*_URL", public, minOf(2))), webPrivate, apiPublic},
			instances: []binding.Instance{web, api},
			want:      []string{"web@1:80/WEB_URL not public"},
		},
		{
			name:      "below a template's min, though resolved",
			manifests: []manifest.Manifest{lb(all("*_URL", public), 1, 2), webPrivate, apiPublic},
			instances: []binding.Instance{web, api},
			resolved:  true,
			want:      []string{"web@1:80/WEB_URL not public"},
		},
		{
			name:      "min 0 everywhere: a listener never keeps a file",
			manifests: []manifest.Manifest{lb(all("*_URL", public, minOf(0)), 0), webPrivate},
			instances: []binding.Instance{web},
			resolved:  true,
		},
		{
			name:      "every reason, sorted",
			manifests: []manifest.Manifest{lb(all("*_URL", public)), webPrivate},
			instances: []binding.Instance{web, api, inst("other", "api", "3", "", true, "API_URL", "X_URL")},
			want: []string{
				"api@2:80/API_URL unpublished", "api@3:80/API_URL other federation",
				"api@3:80/X_URL other federation", "web@1:80/WEB_URL not public",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := binding.Snapshot{Manifests: tc.manifests, Instances: tc.instances}
			sortSnapshot(&snap)
			b := mustLookup(t, Resolve(&snap), "default", "lb", "")
			v := b.Vars["ROUTES"]
			if v.Resolved != tc.resolved {
				t.Fatalf("ROUTES resolved = %v, want %v (%+v)", v.Resolved, tc.resolved, v)
			}
			if got := withheldOfVar(v); !slices.Equal(got, tc.want) {
				t.Fatalf("withheld %q, want %q", got, tc.want)
			}
			if b.Vars["DB"].Withheld != nil {
				t.Fatalf("a select-one var lists withheld providers: %+v", b.Vars["DB"])
			}
			x, err := Explain(&snap, "default", "lb", "", "ROUTES")
			if err != nil || !slices.Equal(withheldOfVar(x.Result), tc.want) {
				t.Fatalf("explained withheld %q (%v), want %q", withheldOfVar(x.Result), err, tc.want)
			}
		})
	}
}

func TestWithheldValueLocatesOnly(t *testing.T) {
	web := inst("default", "web", "1", "", true)
	web.Provides = map[string]string{
		"A_URL": "http://user:secret@10.0.0.1:8080/api?token=x#f",
		"B_URL": "not a url: password",
		"C_URL": "https://web.example/p%2Fq",
	}
	snap := binding.Snapshot{
		Manifests: []manifest.Manifest{svc("default", "lb", true, map[string]manifest.Requirement{"R": all("*_URL", public)}), svc("default", "web", false, nil)},
		Instances: []binding.Instance{web},
	}
	v := mustLookup(t, Resolve(&snap), "default", "lb", "").Vars["R"]
	var got []string
	for _, w := range v.Withheld.List() {
		got = append(got, w.Key+"="+w.Value)
		if w.Address != "10.0.0.1" || w.Port != 80 || w.Service != "web" {
			t.Fatalf("withheld %+v lost where the instance is", w)
		}
	}
	want := []string{"A_URL=http://10.0.0.1:8080/api", "B_URL=", "C_URL=https://web.example/p%2Fq"}
	if !slices.Equal(got, want) {
		t.Fatalf("withheld values %q, want %q", got, want)
	}
}

func TestWithheldBounded(t *testing.T) {
	snap := binding.Snapshot{Manifests: []manifest.Manifest{
		svc("default", "lb", true, map[string]manifest.Requirement{"R": all("WEB_URL", public)}),
		svc("default", "web", false, nil),
	}}
	for i := range binding.MaxWithheld + 5 {
		snap.Instances = append(snap.Instances, inst("default", "web", fmt.Sprint(i), "", false, "WEB_URL"))
	}
	v := mustLookup(t, Resolve(&snap), "default", "lb", "").Vars["R"]
	if len(v.Withheld.List()) != binding.MaxWithheld || v.Withheld.LeftOut() != 5 {
		t.Fatalf("%d withheld and %d omitted, want %d and 5", len(v.Withheld.List()), v.Withheld.LeftOut(), binding.MaxWithheld)
	}
	if n := len(mustJSON(t, v)); n > 200*binding.MaxWithheld {
		t.Fatalf("a var at the withheld bound is %d bytes", n)
	}
}

// A binding that lists nothing withheld encodes as before, and one whose
// withheld providers alone change encodes differently, which is what
// makes the resolver loop write it with a new revision.
func TestWithheldInEncoding(t *testing.T) {
	base := binding.Snapshot{Manifests: []manifest.Manifest{
		svc("default", "lb", true, map[string]manifest.Requirement{"R": all("*_URL", public)}),
		svc("default", "web", true, nil, "WEB_URL"),
	}}
	plain := mustJSON(t, mustLookup(t, Resolve(&base), "default", "lb", ""))
	if strings.Contains(plain, "withheld") {
		t.Fatalf("a binding without withheld providers mentions them: %s", plain)
	}
	moved := base
	moved.Instances = []binding.Instance{inst("other", "web", "1", "", true, "WEB_URL")}
	b := mustLookup(t, Resolve(&moved), "default", "lb", "")
	if got := mustJSON(t, b); got == plain || !strings.Contains(got, `"reason":"other federation"`) {
		t.Fatalf("a foreign provider alone left the binding %s", got)
	}
	if b.Ready() || len(b.Vars["R"].Providers) != 0 {
		t.Fatalf("a foreign provider was bound: %+v", b.Vars["R"])
	}
}
