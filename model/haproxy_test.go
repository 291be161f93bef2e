package model

import (
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/harness/lbtest"
)

func TestDiffHAProxy(t *testing.T) {
	opts := map[string]string{"check_inter": "500ms"}
	base := lbtest.RenderHAProxy(t, opts, "8001", "8002")
	for _, tc := range []struct {
		name     string
		new      []byte
		add, del []string
		why      string
	}{
		{name: "same", new: base},
		{name: "one added", new: lbtest.RenderHAProxy(t, opts, "8001", "8002", "8003"), add: []string{"web_n_8003"}},
		{name: "one removed", new: lbtest.RenderHAProxy(t, opts, "8002"), del: []string{"web_n_8001"}},
		{name: "both", new: lbtest.RenderHAProxy(t, opts, "8002", "8004"), add: []string{"web_n_8004"}, del: []string{"web_n_8001"}},
		{name: "option changed", new: lbtest.RenderHAProxy(t, map[string]string{"check_inter": "1s"}, "8001", "8002"), why: "structure"},
		{name: "route gone", new: lbtest.RenderHAProxy(t, opts), why: "structure"},
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
