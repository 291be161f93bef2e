package binding

import (
	"maps"
	"slices"

	"github.com/patchbay/patchbay/internal/redact"
)

// The redaction policy (internal/redact) applied to bindings: a value is
// masked whole when it came from a datastore (datastores hold credentials
// more often than live providers do) or when its variable's or provided
// key's name looks secret; other values show with their URL passwords
// hidden. The CLI, plans, the console and the listener's reports all read
// values through these.

// Redacted returns a copy of b with its secrets masked; b is unchanged.
func (b *Binding) Redacted() *Binding {
	out := *b
	out.Vars = make(map[string]Var, len(b.Vars))
	for name, v := range b.Vars {
		out.Vars[name] = v.Redacted(name)
	}
	return &out
}

// Redacted returns v, the value of variable name, with its secrets
// masked; v is unchanged.
func (v Var) Redacted(name string) Var {
	secret := v.secret(name)
	v.Providers = slices.Clone(v.Providers)
	for i, p := range v.Providers {
		v.Providers[i] = p.Redacted(name)
	}
	if secret && v.Value != "" {
		v.Value = redact.Masked
	} else {
		v.Value = redact.Value(name, v.Value)
	}
	return v
}

// secret reports whether v's value is masked whole: its name, a
// provider's key or a datastore says it is a secret. A value built from a
// secret key holds the secret.
func (v Var) secret(name string) bool {
	return redact.SecretName(name) || slices.ContainsFunc(v.Providers, func(p Provider) bool {
		return p.Datastore || redact.SecretName(p.Key)
	})
}

// Redacted returns p, a provider of variable varName, with its secrets
// masked.
func (p Provider) Redacted(varName string) Provider {
	switch {
	case p.Value == "":
	case p.Datastore || redact.SecretName(varName) || redact.SecretName(p.Key):
		p.Value = redact.Masked
	default:
		p.Value = redact.URLPasswords(p.Value)
	}
	return p
}

// Secrets are the strings that Redacted hides in b's values, for masking
// them in text rendered from b (a diff of a rendered file).
func (b *Binding) Secrets() []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(b.Vars)) {
		v := b.Vars[name]
		out = append(out, redact.Secrets(name, v.Value, v.secret(name))...)
		for _, p := range v.Providers {
			out = append(out, redact.Secrets(p.Key, p.Value, p.Datastore || redact.SecretName(name))...)
		}
	}
	return out
}
