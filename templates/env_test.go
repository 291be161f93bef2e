package templates

import (
	"slices"
	"testing"

	"github.com/patchbay/patchbay/binding"
)

// One environment for templates and commands: a requirement beats the
// manifest's environment, the node beats both, refused names are dropped
// and listed, and nothing of this process's environment leaks in.
func TestEnviron(t *testing.T) {
	t.Setenv("PATCHBAY_TEST_LEAK", "from-the-process")
	b := &binding.Binding{Vars: map[string]binding.Var{
		"DB_URL": {Value: "postgres://db/app", Resolved: true},
		"CACHE":  {Value: ""}, // unresolved optional: seen as ""
	}}
	tests := []struct {
		name        string
		manifest    map[string]string
		binding     *binding.Binding
		node        []string
		refuse      func(string) bool
		want, drops []string
	}{
		{"nothing", nil, nil, nil, nil, []string{}, nil},
		{"requirement wins over manifest", map[string]string{"DB_URL": "manifest", "MODE": "prod"}, b, nil, nil,
			[]string{"CACHE=", "DB_URL=postgres://db/app", "MODE=prod"}, nil},
		{"node wins and drops the manifest's", map[string]string{"MODE": "prod"}, b, []string{"PATH=/bin", "MODE=node"}, nil,
			[]string{"CACHE=", "DB_URL=postgres://db/app", "PATH=/bin", "MODE=node"}, []string{"MODE"}},
		{"refused names are dropped", map[string]string{"LD_PRELOAD": "/x.so", "MODE": "prod"}, nil, []string{"PATH=/bin"},
			func(k string) bool { return k == "LD_PRELOAD" }, []string{"MODE=prod", "PATH=/bin"}, []string{"LD_PRELOAD"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, dropped := Environ(tt.manifest, tt.binding, tt.node, tt.refuse)
			if !slices.Equal(env, tt.want) || !slices.Equal(dropped, tt.drops) {
				t.Fatalf("Environ = %q dropped %q, want %q dropped %q", env, dropped, tt.want, tt.drops)
			}
		})
	}
}

// A name the node gives twice (PATH, then listener.yaml's env.set PATH)
// reads as its last value in a template, as os/exec gives a command.
func TestEnvFuncReadsLastLikeExec(t *testing.T) {
	env := envFuncs{"PATH=/usr/bin", "MODE=a", "PATH=/opt/bin"}
	if got := env.get("PATH"); got != "/opt/bin" {
		t.Fatalf("env PATH = %q, want the last, /opt/bin", got)
	}
	if got := env.orDefault("NONE", "d"); got != "d" {
		t.Fatalf("envOrDefault NONE = %q, want d", got)
	}
}
