package templates

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/errkind"
)

// Errors a caller can act on.
var (
	// ErrUnresolved: the template needs a requirement that did not resolve;
	// the last good file stays.
	ErrUnresolved = errkind.New(errkind.Input, "templates: requirement unresolved")
	// ErrTooFewUpstreams: an upstreams or routes call returned fewer
	// providers than the template's min; the last good file stays.
	ErrTooFewUpstreams = errkind.New(errkind.Input, "templates: too few upstreams")
	// ErrUnknownVar: the template names a requirement the service lacks.
	ErrUnknownVar = errkind.New(errkind.Input, "templates: unknown requirement")
)

// Data is what patchbay's template functions read. It is all in memory, so
// no patchbay function ever blocks or fetches.
type Data struct {
	Service    string
	Federation string
	Region     string
	// Environment is the manifest's environment; bindings and env see it.
	Environment map[string]string
	// NodeEnv is what else env sees, as NAME=value: the node's PATH and
	// what its listener.yaml passes. It wins over the manifest's names; the
	// process environment is never seen.
	NodeEnv []string
	// Binding is the service's binding; nil for a service that requires nothing.
	Binding *binding.Binding
	// Options are the template's options (the option function).
	Options map[string]string
	// Min is the fewest upstreams an upstreams or routes call may return.
	Min int
	// Warn, when set, receives what a render left out without failing: a
	// route's conflicting mounts (see Route.Conflict).
	Warn func(string)
}

// Upstream is one provider of a requirement, as a load balancer needs it.
type Upstream struct {
	// Name is a config-safe identifier (letters, digits, _), unique per instance.
	Name      string
	Scheme    string // "http" or "https"; "" when the value is not a URL
	Host      string
	Port      int
	HostPort  string // "host:port", IPv6 in brackets
	URL       string // the provided value
	Path      string // the URL's path, "" when it has none
	Key       string // the provided key
	Service   string
	Instance  string
	Node      string
	Region    string
	Public    bool
	Datastore bool
}

// Route is every upstream of one provided key: one virtual host or
// location of a load balancer.
type Route struct {
	// Name is derived from the key: WWW_URL → "www", READONLY_API_URL →
	// "readonly-api". It is a DNS label, usable as a host name.
	Name string
	// ID is Name as a config identifier ("readonly_api").
	ID        string
	Key       string
	Path      string // path of the upstreams' URLs
	Scheme    string // scheme of the upstreams' URLs, "http" when none
	Public    bool   // every upstream is public
	Upstreams []Upstream
	// Conflict is set when providers mount the key at different schemes
	// or paths: the route keeps one mount's upstreams and says which it
	// left out (routes.go).
	Conflict string
}

// Info is the run's context, returned by the patchbay function.
type Info struct {
	Service    string
	Federation string
	Region     string
	Revision   uint64
}

// funcs are patchbay's template functions over one Data.
type funcs struct {
	data *Data
	// err is the first error a function returned; consul-template
	// flattens errors into strings, this keeps the sentinel.
	err error
	// env is what env sees, built on first use: most renders never call it.
	env envFuncs
}

// environ is the environment env, mustEnv and envOrDefault read.
func (f *funcs) environ() envFuncs {
	if f.env == nil {
		f.env = envFuncs(environ(f.data))
	}
	return f.env
}

// reset points f at another render's data.
func (f *funcs) reset(d *Data) { f.data, f.err, f.env = d, nil, nil }

func (f *funcs) fail(err error) error {
	if f.err == nil {
		f.err = err
	}
	return err
}

func (f *funcs) quoter(q func(string) (string, error)) func(string) (string, error) {
	return func(v string) (string, error) {
		s, err := q(v)
		if err != nil {
			return "", f.fail(err)
		}
		return s, nil
	}
}

// funcMap is patchbay's functions, added to consul-template's.
func (f *funcs) funcMap() template.FuncMap {
	return template.FuncMap{
		"patchbay":     f.info,
		"binding":      f.binding,
		"bindings":     f.bindings,
		"upstreams":    f.upstreams,
		"routes":       f.routes,
		"option":       f.option,
		"shellQuote":   f.quoter(ShellQuote),
		"systemdQuote": f.quoter(SystemdQuote),
		"dotenvQuote":  f.quoter(DotenvQuote),
		// consul-template's own fall back to the process environment.
		"env":          func(name string) string { return f.environ().get(name) },
		"mustEnv":      func(name string) (string, error) { return f.environ().must(name) },
		"envOrDefault": func(name, def string) string { return f.environ().orDefault(name, def) },
		"mustUTF8": func(vars map[string]string) (map[string]string, error) {
			out, err := mustUTF8(vars)
			if err != nil {
				return nil, f.fail(err)
			}
			return out, nil
		},
	}
}

func (f *funcs) info() Info {
	i := Info{Service: f.data.Service, Federation: f.data.Federation, Region: f.data.Region}
	if f.data.Binding != nil {
		i.Revision = f.data.Binding.Revision
	}
	return i
}

// lookup returns a requirement, failing when the template may not use it.
func (f *funcs) lookup(name string) (binding.Var, error) {
	var vars map[string]binding.Var
	if f.data.Binding != nil {
		vars = f.data.Binding.Vars
	}
	v, ok := vars[name]
	if !ok {
		known := slices.Sorted(maps.Keys(vars))
		return v, f.fail(fmt.Errorf("%w %q in service %s; its requirements are [%s]", ErrUnknownVar, name, f.data.Service, strings.Join(known, " ")))
	}
	if !v.Resolved && !v.Optional {
		return v, f.fail(fmt.Errorf("%w: %s: %s", ErrUnresolved, name, f.reason(name)))
	}
	return v, nil
}

func (f *funcs) reason(name string) string {
	for _, u := range f.data.Binding.Unresolved {
		if u.Var == name {
			return u.Reason
		}
	}
	return "no live provider"
}

// binding returns one requirement's value; for select all, the values
// joined with ",". An unresolved optional requirement is "".
func (f *funcs) binding(name string) (string, error) {
	v, err := f.lookup(name)
	return v.Value, err
}

// bindings returns the environment and every requirement's value, the
// requirements winning: what the service's process should see.
func (f *funcs) bindings() (map[string]string, error) {
	out := maps.Clone(f.data.Environment)
	if out == nil {
		out = map[string]string{}
	}
	if f.data.Binding == nil {
		return out, nil
	}
	for _, name := range slices.Sorted(maps.Keys(f.data.Binding.Vars)) {
		v, err := f.lookup(name)
		if err != nil {
			return nil, err
		}
		out[name] = v.Value
	}
	return out, nil
}

func (f *funcs) upstreams(name string) ([]Upstream, error) {
	v, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	ups := make([]Upstream, 0, len(v.Providers))
	for _, p := range v.Providers {
		if u, ok := upstream(p); ok {
			ups = append(ups, u)
		}
	}
	return ups, f.guard(name, len(ups))
}

// routes groups a requirement's upstreams by provided key.
func (f *funcs) routes(name string) ([]Route, error) {
	v, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	byKey := map[string]*Route{}
	for _, p := range v.Providers {
		u, ok := upstream(p)
		if !ok {
			continue
		}
		r, ok := byKey[p.Key]
		if !ok {
			r = newRoute(p.Key)
			byKey[p.Key] = r
		}
		r.Public = r.Public && u.Public
		r.Upstreams = append(r.Upstreams, u)
	}
	out := make([]Route, 0, len(byKey))
	n := 0
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		f.settle(byKey[k])
		n += len(byKey[k].Upstreams)
		out = append(out, *byKey[k])
	}
	return out, f.guard(name, n)
}

func newRoute(key string) *Route {
	name := strings.ToLower(strings.TrimSuffix(key, "_URL"))
	if name == "" {
		name = strings.ToLower(key)
	}
	return &Route{
		Name:   strings.Trim(strings.ReplaceAll(name, "_", "-"), "-"),
		ID:     configID(name),
		Key:    key,
		Public: true,
	}
}

// guard is the min check: a load balancer is never rendered with fewer
// upstreams than the template allows.
func (f *funcs) guard(name string, n int) error {
	if n < f.data.Min {
		return f.fail(fmt.Errorf("%w: %s has %d, the template needs at least %d (set min: 0 to allow none)", ErrTooFewUpstreams, name, n, f.data.Min))
	}
	return nil
}

func (f *funcs) option(name string, fallback ...string) (string, error) {
	if v, ok := f.data.Options[name]; ok {
		return v, nil
	}
	if len(fallback) == 1 {
		return fallback[0], nil
	}
	return "", f.fail(fmt.Errorf("templates: option %q is not set; add it under the template's options", name))
}

// upstream describes a provider by its URL when the value is one, so a
// provided "http://10.0.0.5:8080/mount" gives that host and port even when
// the instance registered another address.
//
// Upstreams land in load-balancer configs that other services' manifests
// cannot otherwise touch, so a provider whose host or path could carry
// config syntax (";", "{", spaces) is left out rather than rendered.
func upstream(p binding.Provider) (Upstream, bool) {
	u := Upstream{
		Name: configID(cmp.Or(p.Instance, p.Key)), Host: p.Address, Port: p.Port, URL: p.Value,
		Key: p.Key, Service: p.Service, Instance: p.Instance, Node: p.Node,
		Region: p.Region, Public: p.Public, Datastore: p.Datastore,
	}
	if parsed, err := url.Parse(p.Value); err == nil && parsed.Host != "" {
		u.Scheme = parsed.Scheme
		u.Path = strings.TrimSuffix(parsed.EscapedPath(), "/")
		u.Host = parsed.Hostname()
		u.Port = defaultPorts[parsed.Scheme]
		if n, err := strconv.Atoi(parsed.Port()); err == nil {
			u.Port = n
		}
		if u.Port == 0 {
			return u, false // a URL of another scheme with no port: nothing to proxy to
		}
	}
	if !safeHost.MatchString(u.Host) || u.Port < 1 || u.Port > 65535 || !safePath.MatchString(u.Path) {
		return u, false
	}
	u.HostPort = net.JoinHostPort(u.Host, strconv.Itoa(u.Port))
	return u, true
}

var defaultPorts = map[string]int{"http": 80, "https": 443}

var (
	safeHost = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)
	safePath = regexp.MustCompile(`^[A-Za-z0-9/._~%-]*$`)
)

// configID maps s to letters, digits and "_", safe as an nginx upstream or
// HAProxy backend name.
func configID(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}
