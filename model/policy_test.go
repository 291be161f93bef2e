package model

import (
	"slices"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/templates"
)

func TestContainsAny(t *testing.T) {
	file := "server web_n1 10.0.0.1:8080 check\n    server 10.0.0.2:80 max_fails=1; # x\n[::1]:9000\n"
	for _, tc := range []struct {
		hp   string
		want bool
	}{
		{"10.0.0.1:8080", true},
		{"10.0.0.2:80", true}, // followed by a space
		{"[::1]:9000", true},
		{"10.0.0.1:808", false}, // a prefix of another port
		{"0.0.0.1:8080", false}, // a suffix of another host
		{"10.0.0.3:80", false},
	} {
		if _, got := containsAny(file, []string{tc.hp}); got != tc.want {
			t.Errorf("containsAny(%q) = %v, want %v", tc.hp, got, tc.want)
		}
	}
}

func TestRelax(t *testing.T) {
	b := &binding.Binding{Vars: map[string]binding.Var{
		"ROUTES": {Select: "all"},
		"DB":     {Select: "one"},
		"OK":     {Select: "all", Resolved: true, Providers: []binding.Provider{{Key: "A_URL"}}},
	}}
	r := relax(b)
	if !r.Vars["ROUTES"].Resolved || r.Vars["DB"].Resolved || len(r.Vars["OK"].Providers) != 1 {
		t.Fatalf("relaxed: %+v", r.Vars)
	}
	if b.Vars["ROUTES"].Resolved {
		t.Fatal("relax changed the binding it was given")
	}
}

func TestForbiddenFromWithheld(t *testing.T) {
	w := func(inst, url, reason string) binding.Withheld {
		return binding.Withheld{Instance: inst, Service: "web", Key: "WEB_URL", Value: url, Address: "10.0.0.9", Port: 9, Reason: reason}
	}
	withheld := func(ws ...binding.Withheld) *binding.Withholding { return &binding.Withholding{Providers: ws} }
	granted := binding.Provider{Key: "API_URL", Value: "http://10.0.0.2:80", Instance: "api@b:80"}
	for _, tc := range []struct {
		name    string
		v       binding.Var
		want    []string
		omitted int
	}{
		{"nothing withheld", binding.Var{Select: "all"}, nil, 0},
		{"each reason", binding.Var{Select: "all", Withheld: withheld(
			w("web@a:80", "http://10.0.0.1:80", binding.WithheldNotPublic),
			w("web@c:81", "http://10.0.0.3:81/api", binding.WithheldOtherFederation),
			w("web@d:82", "", binding.WithheldUnpublished), // no URL: the instance's address
		)}, []string{"10.0.0.1:80", "10.0.0.3:81", "10.0.0.9:9"}, 0},
		{"an address a granted provider shares stays", binding.Var{
			Select: "all", Providers: []binding.Provider{granted},
			Withheld: withheld(w("web@b:80", "http://10.0.0.2:80", binding.WithheldNotPublic)),
		}, nil, 0},
		{"nothing a load balancer can route to", binding.Var{Select: "all", Withheld: withheld(
			w("web@e:80", "ftp://10.0.0.5", binding.WithheldNotPublic),
		)}, nil, 0},
		{"left out for size is counted", binding.Var{Select: "all", Withheld: &binding.Withholding{Omitted: 3}}, nil, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &binding.Binding{Vars: map[string]binding.Var{"ROUTES": tc.v, "OTHER": {
				Select: "all", Withheld: withheld(w("web@z:80", "http://10.9.9.9:80", binding.WithheldNotPublic)),
			}}}
			got, omitted := forbidden(b, []string{"ROUTES"}, templates.LocateUpstream)
			if !slices.Equal(got, tc.want) || omitted != tc.omitted {
				t.Fatalf("forbidden = %q, %d omitted; want %q, %d", got, omitted, tc.want, tc.omitted)
			}
		})
	}
}
