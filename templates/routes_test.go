package templates

import (
	"context"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
)

// TestRouteConflicts: providers of one key that mount it differently are
// never flattened into the first one's path: the route keeps the mount
// most upstreams share, whatever the instance order, and the conflict
// names the services on both sides.
func TestRouteConflicts(t *testing.T) {
	p := func(instance, url string) binding.Provider {
		return binding.Provider{Key: "API_URL", Value: url, Instance: instance, Service: strings.Split(instance, "@")[0], Public: true}
	}
	api1, api2 := p("api@n1:80", "http://10.0.0.1:80/api"), p("api@n2:80", "http://10.0.0.2:80/api/")
	web := p("web@n3:80", "http://10.0.0.3:80")
	tls := p("web@n4:443", "https://10.0.0.4:443/api")
	const list = `{{ range routes "ROUTES" }}{{ .Scheme }}|{{ .Path }}|{{ range .Upstreams }}{{ .HostPort }} {{ end }}|{{ .Conflict }}{{ end }}`
	for _, tc := range []struct {
		name     string
		ps       []binding.Provider
		want     string // scheme|path|upstreams|
		conflict []string
	}{
		{name: "agreeing", ps: []binding.Provider{api1, api2}, want: "http|/api|10.0.0.1:80 10.0.0.2:80 |"},
		{name: "majority path, path-less first", ps: []binding.Provider{web, api1, api2}, want: "http|/api|10.0.0.1:80 10.0.0.2:80 |",
			conflict: []string{"API_URL: providers mount it differently", "http://…/api from api (2)", "http://…/ from web (1)", "the route keeps http://…/api"}},
		{name: "majority path, path-less last", ps: []binding.Provider{api1, api2, web}, want: "http|/api|10.0.0.1:80 10.0.0.2:80 |",
			conflict: []string{"from api (2)", "from web (1)"}},
		{name: "tie broken by mount, not instance order", ps: []binding.Provider{web, api1}, want: "http||10.0.0.3:80 |",
			conflict: []string{"http://…/ from web (1) vs http://…/api from api (1)", "keeps http://…/"}},
		{name: "tie, other order", ps: []binding.Provider{api1, web}, want: "http||10.0.0.3:80 |", conflict: []string{"keeps http://…/"}},
		{name: "schemes differ", ps: []binding.Provider{api1, api2, tls}, want: "http|/api|10.0.0.1:80 10.0.0.2:80 |",
			conflict: []string{"https://…/api from web (1)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testData()
			withRoutes(1, tc.ps...)(&d)
			var warned []string
			d.Warn = func(s string) { warned = append(warned, s) }
			got, err := NewRenderer().Render(context.Background(), "test.conf", list, d)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(got), tc.want) {
				t.Fatalf("got %q, want it to start with %q", got, tc.want)
			}
			conflict := strings.TrimPrefix(string(got), tc.want)
			if (len(tc.conflict) == 0) != (conflict == "") || (len(tc.conflict) == 0) != (len(warned) == 0) {
				t.Fatalf("conflict %q, warned %q, want %q", conflict, warned, tc.conflict)
			}
			for _, s := range tc.conflict {
				if !strings.Contains(conflict, s) || !strings.Contains(warned[0], s) {
					t.Errorf("conflict %q does not say %q", conflict, s)
				}
			}
		})
	}
}

// TestRouteConflictsInBuiltins: the builtin load balancers say so in the
// file, next to the route.
func TestRouteConflictsInBuiltins(t *testing.T) {
	for _, name := range []string{"nginx", "haproxy"} {
		d := testData()
		withRoutes(1,
			binding.Provider{Key: "API_URL", Value: "http://10.0.0.1:80/api", Instance: "api@n1:80", Service: "api"},
			binding.Provider{Key: "API_URL", Value: "http://10.0.0.3:80", Instance: "web@n3:80", Service: "web"},
		)(&d)
		contents, _ := Builtin(name)
		got, err := NewRenderer().Render(context.Background(), name, contents, d)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(got), "# conflict: API_URL: providers mount it differently") || strings.Contains(string(got), "10.0.0.1:80") {
			t.Errorf("%s:\n%s", name, got)
		}
	}
}
