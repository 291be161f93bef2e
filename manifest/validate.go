package manifest

import (
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// IsDNSLabel reports whether s can name a service, federation or group.
func IsDNSLabel(s string) bool { return dnsLabel.MatchString(s) }

// globPattern is a provided key with * and ? wildcards.
var globPattern = regexp.MustCompile(`^[A-Z0-9_*?]+$`)

// IsGlob reports whether key has wildcards.
func IsGlob(key string) bool { return strings.ContainsAny(key, "*?") }

// validator normalizes a decoded manifest in place and records what is wrong.
type validator struct {
	loc    locator
	pruned map[string]bool // paths the schema check reported and removed
	probs  Problems
}

func (v *validator) report(at []string, format string, args ...any) {
	for i := range at {
		if v.pruned[strings.Join(at[:i+1], ".")] {
			return // already reported as malformed; a second message is noise
		}
	}
	p := v.loc.at(at...)
	p.Message = fmt.Sprintf(format, args...)
	v.probs = append(v.probs, p)
}

func (v *validator) label(value string, at []string, what string) {
	switch {
	case value == "":
		v.report(at, "%s: missing; give a DNS label such as %q", strings.Join(at, "."), what)
	case !IsDNSLabel(value):
		v.report(at, "%s: %q is not a DNS label; use lower-case letters, digits and \"-\", at most 63, like %q", strings.Join(at, "."), value, what)
	}
}

func (v *validator) keyName(name string, at []string, what string) {
	if !IsKeyName(name) {
		v.report(at, "%s %q is not an upper-case name; use A-Z, 0-9 and _, not starting with a digit (e.g. %q)", what, name, strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name)))
	}
}

func (v *validator) manifest(m *Manifest) {
	v.label(m.ID, []string{"id"}, "app-www")
	if m.Federation == "" {
		m.Federation = DefaultFederation
	}
	v.label(m.Federation, []string{"federation"}, "seatgeek")
	for _, k := range slices.Sorted(maps.Keys(m.Environment)) {
		v.keyName(k, []string{"environment", k}, "environment variable")
	}
	known := append(slices.Clone(InstancePlaceholders), slices.Sorted(maps.Keys(m.Environment))...)
	if !m.Indexed {
		// only indexed services number their instances
		known = slices.DeleteFunc(known, func(k string) bool { return k == PlaceholderIndex && m.Environment[k] == "" })
	}
	for _, k := range slices.Sorted(maps.Keys(m.Provides)) {
		v.keyName(k, []string{"provides", k}, "provided key")
		v.template(m.Provides[k], known, []string{"provides", k})
	}
	for _, k := range slices.Sorted(maps.Keys(m.Requires)) {
		r := m.Requires[k]
		v.keyName(k, []string{"requires", k}, "required variable")
		v.requirement(&r, []string{"requires", k})
		m.Requires[k] = r
	}
	if m.LocalPort < 0 || m.LocalPort > 65535 {
		v.report([]string{"local_port"}, "local_port: %d is not a port; use 1 to 65535", m.LocalPort)
	}
	if m.Unique && m.Indexed {
		v.report([]string{"indexed"}, "unique and indexed exclude each other: a unique service has one live instance, an indexed one numbers many")
	}
	if m.Rollout != nil {
		v.rollout(m.Rollout)
	}
	if m.Provision != nil {
		v.provision(m.Provision)
	}
	if m.Health != nil {
		v.health(m.Health, known)
	}
	v.tests(m.Tests, known)
	for _, name := range slices.Sorted(maps.Keys(m.Templates)) {
		t := m.Templates[name]
		v.templateSpec(name, &t)
		m.Templates[name] = t
	}
}

// template checks that s parses and uses only known placeholders.
func (v *validator) template(s string, known []string, at []string) {
	t, err := ParseTemplate(s)
	if err != nil {
		v.report(at, "%s: %s", strings.Join(at, "."), strings.TrimPrefix(err.Error(), ErrTemplateSyntax.Error()+": "))
		return
	}
	for _, name := range t.Names() {
		if name == PlaceholderIndex && !slices.Contains(known, name) {
			v.report(at, "%s: {INDEX} numbers the instances of indexed services only; add indexed: true", strings.Join(at, "."))
		} else if !slices.Contains(known, name) {
			v.report(at, "%s: unknown placeholder {%s}; known are %s and the environment keys%s", strings.Join(at, "."), name, strings.Join(InstancePlaceholders, ", "), suggest(name, known))
		}
	}
}

func (v *validator) requirement(r *Requirement, at []string) {
	name := strings.Join(at, ".")
	switch {
	case r.Key != "" && r.Template != "":
		v.report(at, "%s: give key or template, not both", name)
		return
	case r.Key == "" && r.Template == "":
		v.report(at, "%s: missing; give a template like \"{PRIMARY_DATABASE_URL}\" or a mapping with key", name)
		return
	case r.Template != "":
		v.requirementTemplate(r, at)
	case IsGlob(r.Key):
		if _, err := path.Match(r.Key, ""); err != nil || !globPattern.MatchString(r.Key) {
			v.report(append(at, "key"), "%s.key: %q is not a key glob; use A-Z, 0-9, _ with * and ?", name, r.Key)
		}
	default:
		v.keyName(r.Key, append(at, "key"), "provided key")
	}
	if r.Select == "" {
		r.Select = SelectOne
	}
	if r.Region == "" {
		r.Region = RegionPreferLocal
	}
	switch r.Select {
	case SelectOne:
		if IsGlob(r.Key) {
			v.report(append(at, "select"), "%s: key %q is a glob, which matches many providers; add select: all", name, r.Key)
		}
		if r.Min != nil {
			v.report(append(at, "min"), "%s.min: applies only with select: all", name)
		}
	case SelectAll:
		if r.Template != "" {
			v.report(append(at, "select"), "%s: a template combining several keys binds one provider; use select: one", name)
		}
		if r.Min == nil {
			r.Min = new(int)
			*r.Min = DefaultSelectAllMin
		} else if *r.Min < 0 {
			v.report(append(at, "min"), "%s.min: %d is negative; use 0 or more", name, *r.Min)
		}
	default:
		v.report(append(at, "select"), "%s.select: %q is not one of one, all%s", name, r.Select, suggest(r.Select, []string{SelectOne, SelectAll}))
	}
	if modes := []string{RegionPreferLocal, RegionLocalOnly, RegionAny}; !slices.Contains(modes, r.Region) {
		v.report(append(at, "region"), "%s.region: %q is not one of %s%s", name, r.Region, strings.Join(modes, ", "), suggest(r.Region, modes))
	}
	v.via(r, at) // local.go
}

// requirementTemplate normalizes a template of exactly one placeholder into
// a key, the long form.
func (v *validator) requirementTemplate(r *Requirement, at []string) {
	name := strings.Join(at, ".")
	t, err := ParseTemplate(r.Template)
	if err != nil {
		v.report(at, "%s: %s", name, strings.TrimPrefix(err.Error(), ErrTemplateSyntax.Error()+": "))
		return
	}
	if key, ok := t.Single(); ok {
		r.Key, r.Template = key, ""
		return
	}
	if len(t.Names()) == 0 {
		v.report(at, "%s: %q names no provided key; write \"{%s}\"", name, r.Template, strings.ToUpper(r.Template))
	}
}

func (v *validator) rollout(r *Rollout) {
	v.label(r.Group, []string{"rollout", "group"}, "www")
	if r.Concurrency == 0 {
		r.Concurrency = DefaultConcurrency
	}
	if r.Concurrency < 1 {
		v.report([]string{"rollout", "concurrency"}, "rollout.concurrency: %d nodes at a time cannot work; use 1 or more", r.Concurrency)
	}
	if r.HealthTimeout == 0 {
		r.HealthTimeout = DefaultHealthTimeout
	}
}

func (v *validator) provision(p *Provision) {
	if len(p.Command) == 0 || p.Command[0] == "" {
		v.report([]string{"provision", "command"}, "provision.command: missing; give the program and its arguments as a list, e.g. [\"chef-solo\", \"-o\", \"nginx::default\"]")
	}
	if p.Timeout == 0 {
		p.Timeout = DefaultProvisionLimit
	}
}

func (v *validator) health(h *Health, known []string) {
	set := 0
	for _, s := range []bool{h.HTTP != "", h.TCP != "", h.TTL != 0} {
		if s {
			set++
		}
	}
	if set != 1 {
		v.report([]string{"health"}, "health: give exactly one of http, tcp and ttl")
		return
	}
	switch {
	case h.HTTP != "":
		v.template(h.HTTP, known, []string{"health", "http"})
		if !strings.HasPrefix(h.HTTP, "http://") && !strings.HasPrefix(h.HTTP, "https://") {
			v.report([]string{"health", "http"}, "health.http: %q is not an http:// or https:// URL", h.HTTP)
		}
	case h.TCP != "":
		v.template(h.TCP, known, []string{"health", "tcp"})
	}
	if h.TTL == 0 && h.Interval == 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.TTL == 0 && h.Timeout == 0 {
		h.Timeout = DefaultHealthCheckMax
	}
}

func (v *validator) datastores(ds *Datastores) {
	if ds.Federation == "" {
		ds.Federation = DefaultFederation
	}
	v.label(ds.Federation, []string{"federation"}, "seatgeek")
	if len(ds.Values) == 0 {
		v.report([]string{"datastores"}, "datastores: empty; give KEY: value pairs such as PRIMARY_DATABASE_URL: postgres://db:5432/app")
	}
	for _, k := range slices.Sorted(maps.Keys(ds.Values)) {
		v.keyName(k, []string{"datastores", k}, "datastore key")
		if ds.Values[k] == "" {
			v.report([]string{"datastores", k}, "datastores.%s: empty value; give the URL or remove the key", k)
		}
	}
}

var (
	octalPerms  = regexp.MustCompile(`^0?[0-7]{3}$`)
	builtinName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
)

// templateSpec checks one entry of templates and fills in its defaults.
func (v *validator) templateSpec(name string, t *TemplateFile) {
	at := func(field string) []string { return []string{"templates", name, field} }
	if !IsDNSLabel(name) {
		v.report([]string{"templates", name}, "templates: %q is not a name; use lower-case letters, digits and \"-\", like \"nginx\"", name)
	}
	switch {
	case t.Source != "" && t.Contents != "":
		v.report(at("source"), "templates.%s: give source or contents, not both", name)
	case t.Source == "" && t.Contents == "":
		v.report(at("source"), "templates.%s: missing source; give \"builtin:env\", an absolute path, or the template as contents", name)
	case strings.HasPrefix(t.Source, BuiltinPrefix):
		if n := strings.TrimPrefix(t.Source, BuiltinPrefix); !builtinName.MatchString(n) {
			v.report(at("source"), "templates.%s.source: %q is not a builtin name; write it like \"builtin:env\"", name, t.Source)
		}
	case t.Source != "" && !path.IsAbs(t.Source):
		v.report(at("source"), "templates.%s.source: %q is relative; give an absolute path on the host, \"builtin:NAME\", or inline contents", name, t.Source)
	}
	if !path.IsAbs(t.Destination) {
		v.report(at("destination"), "templates.%s.destination: %q is not an absolute path; give where the file is installed, like \"/etc/%s/env\"", name, t.Destination, name)
	} else if path.Clean(t.Destination) != t.Destination {
		// A listener refuses it too: ".." could climb out of its root.
		v.report(at("destination"), "templates.%s.destination: %q is not a clean path; write it without \"..\", \"//\" or a trailing \"/\", like %q", name, t.Destination, path.Clean(t.Destination))
	}
	if t.Perms == "" {
		t.Perms = DefaultTemplatePerms
	}
	if !octalPerms.MatchString(t.Perms) {
		v.report(at("perms"), "templates.%s.perms: %q is not octal permissions; write them like \"0640\"", name, t.Perms)
	}
	for _, c := range []struct {
		field string
		argv  []string
	}{{"check", t.Check}, {"reload", t.Reload}} {
		if c.argv != nil && (len(c.argv) == 0 || c.argv[0] == "") {
			v.report(at(c.field), "templates.%s.%s: give the program and its arguments as a list, e.g. [\"nginx\", \"-s\", \"reload\"]", name, c.field)
		}
	}
	if t.Min == nil {
		m := DefaultTemplateMin
		t.Min = &m
	}
	if *t.Min < 0 {
		v.report(at("min"), "templates.%s.min: %d upstreams cannot work; use 0 or more", name, *t.Min)
	}
	if t.Timeout == 0 {
		t.Timeout = DefaultCommandTimeout
	}
}
