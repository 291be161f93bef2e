package model

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/templates"
)

// renderHAProxy renders builtin:haproxy over WEB_URL providers at ports.
func renderHAProxy(t *testing.T, options map[string]string, ports ...string) []byte {
	t.Helper()
	var ps []binding.Provider
	for _, p := range ports {
		ps = append(ps, binding.Provider{Key: "WEB_URL", Value: "http://127.0.0.1:" + p, Instance: "web@n:" + p, Service: "web", Public: true})
	}
	contents, err := templates.Builtin("haproxy")
	if err != nil {
		t.Fatal(err)
	}
	out, err := templates.NewRenderer().Render(context.Background(), "haproxy", contents, templates.Data{
		Service: "lb", Options: options,
		Binding: &binding.Binding{Vars: map[string]binding.Var{"ROUTES": {Select: "all", Resolved: true, Providers: ps}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDiffHAProxy(t *testing.T) {
	opts := map[string]string{"check_inter": "500ms"}
	base := renderHAProxy(t, opts, "8001", "8002")
	for _, tc := range []struct {
		name     string
		new      []byte
		add, del []string
		why      string
	}{
		{name: "same", new: base},
		{name: "one added", new: renderHAProxy(t, opts, "8001", "8002", "8003"), add: []string{"web_n_8003"}},
		{name: "one removed", new: renderHAProxy(t, opts, "8002"), del: []string{"web_n_8001"}},
		{name: "both", new: renderHAProxy(t, opts, "8002", "8004"), add: []string{"web_n_8004"}, del: []string{"web_n_8001"}},
		{name: "option changed", new: renderHAProxy(t, map[string]string{"check_inter": "1s"}, "8001", "8002"), why: "structure"},
		{name: "route gone", new: renderHAProxy(t, opts), why: "structure"},
		{name: "host name", new: []byte(strings.Replace(string(base), "127.0.0.1:8002", "web.example:8002", 1)), why: "cannot resolve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, why := DiffHAProxy(base, tc.new)
			if !strings.Contains(why, tc.why) || (tc.why == "") != (why == "") {
				t.Fatalf("why %q, want %q", why, tc.why)
			}
			if why != "" {
				return
			}
			var add []string
			for _, s := range c.Add["web"] {
				add = append(add, s.Name)
				// default-server's arguments, without init-addr, come first.
				if got := strings.Join(s.Args, " "); got != "inter 500ms fall 2 rise 1 check" {
					t.Errorf("args of %s: %q", s.Name, got)
				}
			}
			if !slices.Equal(add, tc.add) || !slices.Equal(c.Del["web"], tc.del) {
				t.Fatalf("add %v del %v, want %v %v", add, c.Del["web"], tc.add, tc.del)
			}
		})
	}
}
