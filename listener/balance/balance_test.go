package balance

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/patchbay/patchbay/binding"
)

func TestScreenUpstreams(t *testing.T) {
	lookups := 0
	h := newHostResolver()
	h.lookup = func(_ context.Context, host string) ([]string, error) {
		lookups++
		if host == "gone.example" {
			return nil, errors.New("no such host")
		}
		return []string{"10.0.0.9"}, nil
	}
	p := func(inst, url string) binding.Provider {
		return binding.Provider{Key: "WEB_URL", Value: url, Instance: inst}
	}
	b := &binding.Binding{Vars: map[string]binding.Var{
		"ROUTES": {Select: "all", Resolved: true, Providers: []binding.Provider{
			p("web@a:80", "http://10.0.0.1:80"), p("web@b:80", "http://gone.example:80"), p("web@c:80", "http://ok.example:80"),
		}},
		"ONE": {Select: "one", Resolved: true, Providers: []binding.Provider{p("web@b:80", "http://gone.example:80")}},
	}}
	for range 2 { // the second time from the cache
		out, left := h.screen(context.Background(), b)
		var kept []string
		for _, pr := range out.Vars["ROUTES"].Providers {
			kept = append(kept, pr.Instance)
		}
		if !slices.Equal(kept, []string{"web@a:80", "web@c:80"}) || len(left) != 1 || left[0] != "web@b:80 WEB_URL (gone.example does not resolve)" {
			t.Fatalf("kept %v, left out %q", kept, left)
		}
		if out.Vars["ROUTES"].Value != "http://10.0.0.1:80,http://ok.example:80" || len(out.Vars["ONE"].Providers) != 1 {
			t.Fatalf("screened vars: %+v", out.Vars)
		}
		if len(b.Vars["ROUTES"].Providers) != 3 {
			t.Fatal("screen changed the binding it was given")
		}
	}
	if lookups != 2 {
		t.Fatalf("%d lookups for two names screened twice, want 2", lookups)
	}
}
