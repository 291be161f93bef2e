package binding

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"

	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/manifest"
)

// MaxRevision is the largest binding revision. Revisions count the writes
// of one binding key from 1, so a real one stays far below it; it is 2^53-1
// so that JavaScript (the console) reads every revision exactly. A stored
// binding above it was not written by the resolver, which refuses to
// continue from it and never numbers past it: a revision that wrapped to 0
// would read as "deleted" and one that went backwards would be ignored.
const MaxRevision = 1<<53 - 1

// ErrBadBinding marks a stored binding (or one an event carries) that does
// not hold to the rules of what the resolver writes.
var ErrBadBinding = errkind.New(errkind.Input, "resolver: invalid binding")

// DecodeBinding reads a stored binding, or one an event carries; where
// names it (its Consul key) in errors. Everything that reads a binding
// goes through it: a binding written into Consul by hand or sent on NATS is
// untrusted input, so the rules of what Resolve produces are checked here.
func DecodeBinding(where string, data []byte) (*Binding, error) {
	if !utf8.Valid(data) {
		// encoding/json would turn such bytes into U+FFFD without a word.
		return nil, fmt.Errorf("%w: %s is not UTF-8; the resolver rewrites it", ErrBadBinding, where)
	}
	var b Binding
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%w: %s is malformed (%v); the resolver rewrites it", ErrBadBinding, where, err)
	}
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v; the resolver rewrites it", ErrBadBinding, where, err)
	}
	return &b, nil
}

// check applies the rules every binding Resolve makes holds to.
func (b *Binding) check() error {
	switch {
	case b.Revision > MaxRevision:
		return fmt.Errorf("revision %d is above the largest, %d", b.Revision, uint64(MaxRevision))
	case b.Federation != "" && !manifest.IsDNSLabel(b.Federation):
		return fmt.Errorf("federation %q is not a DNS label", b.Federation)
	case b.Service != "" && !manifest.IsDNSLabel(b.Service):
		return fmt.Errorf("service %q is not a DNS label", b.Service)
	case b.Region != "" && !manifest.IsDNSLabel(b.Region):
		return fmt.Errorf("region %q is not a DNS label", b.Region)
	}
	for _, name := range slices.Sorted(maps.Keys(b.Vars)) {
		v := b.Vars[name]
		if !manifest.IsKeyName(name) {
			return fmt.Errorf("variable %q is not an upper-case name", name)
		}
		if v.Select != manifest.SelectOne && v.Select != manifest.SelectAll {
			return fmt.Errorf("variable %s: select %q is not one or all", name, v.Select)
		}
	}
	for _, u := range b.Unresolved {
		if _, ok := b.Vars[u.Var]; !ok {
			return fmt.Errorf("unresolved %q is not one of its variables", u.Var)
		}
	}
	return nil
}

// NextRevision is the revision after rev. It never wraps: past MaxRevision
// it fails, and the binding is not written (an operator deletes the key,
// and the resolver writes it anew).
func NextRevision(rev uint64) (uint64, error) {
	if rev >= MaxRevision {
		return 0, fmt.Errorf("%w: revision %d is at the largest, %d", ErrBadBinding, rev, uint64(MaxRevision))
	}
	return rev + 1, nil
}
