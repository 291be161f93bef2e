package model

import (
	"maps"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/binding"
)

// Policy beats last-good. The min guard and an unresolved requirement keep
// a file's last good version, which protects a load balancer against its
// providers dying. A provider the resolver withheld while it is still live
// was dropped by policy (made private, moved to another federation,
// unpublished), and the binding lists it; a file that still routes to it
// is rendered anyway, even with an empty route.

// Eviction is what policy makes a run render although the last good
// version would otherwise stay.
type Eviction struct {
	// Templates are the templates to render, sorted.
	Templates []string
	// Upstreams are, per template, the forbidden host:port found in it.
	Upstreams map[string]string
	// LeftOut counts withheld providers the binding left out for size:
	// a file may keep routing to one of them.
	LeftOut int
}

// unresolvedAll lists the select-all requirements an unresolved binding
// fails on: those policy may have emptied.
func unresolvedAll(b *binding.Binding) []string {
	var vars []string
	for name, v := range b.Vars {
		if !v.Resolved && !v.Optional && v.Select == "all" {
			vars = append(vars, name)
		}
	}
	return vars
}

// selectAll lists every select-all requirement of b.
func selectAll(b *binding.Binding) []string {
	var vars []string
	for name, v := range b.Vars {
		if v.Select == "all" {
			vars = append(vars, name)
		}
	}
	return vars
}

// evicting finds the templates whose installed file contains the address
// of a live provider of vars that the binding withholds by policy.
func evicting(in Input, vars []string) Eviction {
	var ev Eviction
	if len(vars) == 0 || in.Manifest == nil || len(in.Manifest.Templates) == 0 || in.Installed == nil || in.Locate == nil {
		return ev
	}
	hostPorts, omitted := forbidden(in.Binding, vars, in.Locate)
	ev.LeftOut = omitted
	if len(hostPorts) == 0 {
		return ev
	}
	for _, name := range slices.Sorted(maps.Keys(in.Manifest.Templates)) {
		if in.Manifest.Templates[name].Destination == "" {
			continue
		}
		b, ok := in.Installed(name)
		if !ok {
			continue // nothing installed: nothing to evict
		}
		if hp, ok := containsAny(string(b), hostPorts); ok {
			if ev.Upstreams == nil {
				ev.Upstreams = map[string]string{}
			}
			ev.Templates, ev.Upstreams[name] = append(ev.Templates, name), hp
		}
	}
	return ev
}

// forbidden returns the host:port of every provider of vars that the
// binding withholds by policy (the resolver lists only live ones, so a
// kept file still keeps those that died) and no granted provider shares,
// and how many withheld providers the binding left out for size.
func forbidden(b *binding.Binding, vars []string, locate func(binding.Provider) (string, bool)) ([]string, int) {
	var out []string
	omitted := 0
	for _, name := range slices.Sorted(slices.Values(vars)) {
		v := b.Vars[name]
		omitted += v.Withheld.LeftOut()
		granted := map[string]bool{}
		for _, pr := range v.Providers {
			if hp, ok := locate(pr); ok {
				granted[hp] = true
			}
		}
		for _, w := range v.Withheld.List() {
			if hp, ok := locate(w.Provider()); ok && !granted[hp] {
				out = append(out, hp)
			}
		}
	}
	return out, omitted
}

// containsAny finds a host:port in a config file as a whole token: not
// followed by another digit nor preceded by part of a longer host name.
func containsAny(file string, hostPorts []string) (string, bool) {
	for _, hp := range hostPorts {
		for i := 0; ; {
			j := strings.Index(file[i:], hp)
			if j < 0 {
				break
			}
			start, end := i+j, i+j+len(hp)
			before := start == 0 || !isHostByte(file[start-1])
			after := end == len(file) || file[end] < '0' || file[end] > '9'
			if before && after {
				return hp, true
			}
			i = start + 1
		}
	}
	return "", false
}

func isHostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':'
}

// relax is the binding a policy render uses: an unresolved select-all
// requirement is an empty route rather than a kept file.
func relax(b *binding.Binding) *binding.Binding {
	out := *b
	out.Vars = maps.Clone(b.Vars)
	for name, v := range out.Vars {
		if !v.Resolved && v.Select == "all" {
			v.Resolved, v.Providers, v.Value = true, nil, ""
			out.Vars[name] = v
		}
	}
	return &out
}
