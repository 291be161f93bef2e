package templates

import (
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/binding"
)

// A child's environment has one home: what a template's env function sees
// and what a command runs with are built here, so the two cannot drift
// apart on which side wins or what of this process leaks in.

// WithEnv sets the command's environment (default: PATH alone, never
// the rest of this process's, which holds its credentials).
func WithEnv(env []string) RunOption {
	return func(c *exec.Cmd) { c.Env = append([]string{}, env...) } // nil would mean this process's
}

// BaseEnv is a command's environment unless WithEnv sets another: this
// process's PATH, and nothing else of it.
func BaseEnv() []string {
	if p, ok := os.LookupEnv("PATH"); ok {
		return []string{"PATH=" + p}
	}
	return []string{}
}

// Environ is a child's environment: the manifest's environment and every
// requirement's value of b (a requirement wins; an unresolved one is ""),
// then node, the node's NAME=value pairs, which win over both. A manifest
// name that refuse refuses (refuse may be nil) or that node sets is left
// out and listed in dropped. Never this process's environment: it holds
// its credentials.
func Environ(manifestEnv map[string]string, b *binding.Binding, node []string, refuse func(name string) bool) (env, dropped []string) {
	vars := maps.Clone(manifestEnv)
	if vars == nil {
		vars = map[string]string{}
	}
	if b != nil {
		for k, v := range b.Vars {
			vars[k] = v.Value
		}
	}
	nodeSets := func(k string) bool {
		return slices.ContainsFunc(node, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
	}
	env = make([]string, 0, len(vars)+len(node))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		if (refuse != nil && refuse(k)) || nodeSets(k) {
			dropped = append(dropped, k)
			continue
		}
		env = append(env, k+"="+vars[k])
	}
	return append(env, node...), dropped
}
