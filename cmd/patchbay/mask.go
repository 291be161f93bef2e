package main

import (
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/resolver"
)

// masked replaces a secret value in the inspection commands' output.
const masked = "(masked)"

// secretWords mark a variable or key name whose value is a secret: what
// people name passwords, tokens and keys. A false positive only hides a
// value that --show-secrets reveals.
var secretWords = []string{"PASSWORD", "PASSWD", "PWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE", "CERT", "AUTH"}

// secretName reports whether a variable or key name looks like it holds a
// secret.
func secretName(name string) bool {
	upper := strings.ToUpper(name)
	return slices.ContainsFunc(secretWords, func(w string) bool { return strings.Contains(upper, w) })
}

// maskValue hides value when name looks secret, and otherwise the password
// of every URL in it: a select-all value joins several with ",".
func maskValue(name, value string) string {
	if value == "" {
		return value
	}
	if secretName(name) {
		return masked
	}
	if !strings.Contains(value, "://") {
		return value
	}
	parts := strings.Split(value, ",")
	for i, p := range parts {
		u, err := url.Parse(p)
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// maskBinding returns a copy of b with its secrets masked; b is unchanged.
func maskBinding(b *resolver.Binding) *resolver.Binding {
	out := *b
	out.Vars = make(map[string]resolver.Var, len(b.Vars))
	for _, name := range slices.Sorted(maps.Keys(b.Vars)) {
		out.Vars[name] = maskVar(name, b.Vars[name])
	}
	return &out
}

// maskVar masks a variable's value by its name and each provider's value
// by the variable's name or the provider's key: either may say "secret".
func maskVar(name string, v resolver.Var) resolver.Var {
	v.Value = maskValue(name, v.Value)
	v.Providers = slices.Clone(v.Providers)
	for i, p := range v.Providers {
		v.Providers[i] = maskProvider(name, p)
	}
	// A value built from a secret key holds the secret: hide all of it.
	if v.Value != "" && slices.ContainsFunc(v.Providers, func(p resolver.Provider) bool { return p.Value == masked }) {
		v.Value = masked
	}
	return v
}

func maskProvider(varName string, p resolver.Provider) resolver.Provider {
	if secretName(varName) {
		p.Value = maskValue(varName, p.Value)
	} else {
		p.Value = maskValue(p.Key, p.Value)
	}
	return p
}

// maskExplanation returns a copy of x with its secrets masked.
func maskExplanation(x *resolver.Explanation) *resolver.Explanation {
	out := *x
	out.Candidates = slices.Clone(x.Candidates)
	for i, c := range out.Candidates {
		out.Candidates[i].Provider = maskProvider(x.Var, c.Provider)
	}
	out.Winners = slices.Clone(x.Winners)
	for i, p := range out.Winners {
		out.Winners[i] = maskProvider(x.Var, p)
	}
	out.Result = maskVar(x.Var, x.Result)
	return &out
}
