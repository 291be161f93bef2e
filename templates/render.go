// Package templates renders files from a service's bindings with
// consul-template's engine: its whole function set, plus patchbay's
// (patchbay, binding, bindings, upstreams, routes, option and the quoting
// helpers), which read an in-memory snapshot and so never block. Installing
// a rendered file (stage, check, back up, rename) is in install.go.
//
// consul-template logs through the standard library's global logger; the
// program decides where that goes (patchbay routes it into slog at debug).
// This package never builds a Vault client, so VAULT_* variables cannot
// switch Vault on: secret lookups fail with a clear error.
package templates

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	ctemplate "github.com/hashicorp/consul-template/template"

	dep "github.com/hashicorp/consul-template/dependency"

	"github.com/patchbay/patchbay/internal/errkind"
)

// ErrTemplate: the template does not parse or fails to execute.
var ErrTemplate = errkind.New(errkind.Input, "templates: bad template")

// ErrLookup: a consul-template lookup (key, service, ...) failed or timed out.
var ErrLookup = errkind.New(errkind.Backend, "templates: lookup failed")

// DefaultFetchTimeout bounds all consul-template lookups of one render.
const DefaultFetchTimeout = 10 * time.Second

// maxRounds bounds lookups that depend on other lookups (a key per entry
// of ls): each round fetches what the previous execution found missing.
const maxRounds = 8

// denied are consul-template functions with side effects: a render must be
// free of them so that a failed check can still install nothing.
var denied = []string{"plugin", "writeToFile"}

// Fetcher fetches one consul-template dependency once, without blocking
// for changes. A missing key is an error naming it.
type Fetcher interface {
	Fetch(ctx context.Context, d dep.Dependency) (any, error)
}

// Renderer renders templates. It is safe for concurrent use.
type Renderer struct {
	fetch   Fetcher
	timeout time.Duration
	log     *slog.Logger
}

// Option configures a Renderer.
type Option func(*Renderer)

// WithFetcher lets templates use consul-template's lookups (key, service,
// ...); without one they fail with ErrLookup.
func WithFetcher(f Fetcher) Option { return func(r *Renderer) { r.fetch = f } }

// WithFetchTimeout bounds all lookups of one render (default 10s).
func WithFetchTimeout(d time.Duration) Option { return func(r *Renderer) { r.timeout = d } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(r *Renderer) { r.log = l } }

// NewRenderer returns a Renderer.
func NewRenderer(opts ...Option) *Renderer {
	r := &Renderer{timeout: DefaultFetchTimeout, log: slog.Default()}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Render executes a template against data. The output is deterministic:
// the same data and lookups give the same bytes.
func (r *Renderer) Render(ctx context.Context, name, contents string, data Data) ([]byte, error) {
	if contents == "" || !parseOnce() {
		return r.renderEach(ctx, name, contents, data)
	}
	e, err := engines.get(contents)
	if err != nil {
		return nil, executeError(name, &funcs{}, err)
	}
	defer engines.put(contents, e)
	e.begin(&data)
	return r.rounds(ctx, name, &e.f, e.execute, e.remember)
}

// renderEach is Render the way consul-template's Template.Execute goes:
// building the function map and parsing on every execution. Render takes
// it with a consul-template other than the one engine.go was checked
// against; the tests compare the two.
func (r *Renderer) renderEach(ctx context.Context, name, contents string, data Data) ([]byte, error) {
	f := &funcs{data: &data}
	tmpl, err := newEngineTemplate(contents, f)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrTemplate, name, err)
	}
	brain := ctemplate.NewBrain()
	execute := func() (*ctemplate.ExecuteResult, error) {
		return tmpl.Execute(&ctemplate.ExecuteInput{Brain: brain, Env: environ(&data)})
	}
	return r.rounds(ctx, name, f, execute, brain.Remember)
}

// rounds executes a template until its lookups are all answered.
func (r *Renderer) rounds(ctx context.Context, name string, f *funcs, execute func() (*ctemplate.ExecuteResult, error), remember func(dep.Dependency, any)) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	for round := 0; ; round++ {
		res, err := execute()
		if err != nil {
			return nil, executeError(name, f, err)
		}
		if res.Missing.Len() == 0 {
			return res.Output, nil
		}
		if round == maxRounds {
			return nil, fmt.Errorf("%w: template %s: lookups still missing after %d rounds", ErrLookup, name, maxRounds)
		}
		for _, d := range res.Missing.List() {
			v, err := r.lookup(ctx, d)
			if err != nil {
				return nil, fmt.Errorf("template %s: %w", name, err)
			}
			remember(d, v)
		}
	}
}

// newEngineTemplate is the one way a template meets consul-template's
// engine, for Render and for Parse's function probe alike: a template that
// validates is one that renders.
func newEngineTemplate(contents string, f *funcs) (*ctemplate.Template, error) {
	return ctemplate.NewTemplate(&ctemplate.NewTemplateInput{
		Contents:         contents,
		ErrMissingKey:    true,
		ExtFuncMap:       f.funcMap(),
		FunctionDenylist: denied,
	})
}

func (r *Renderer) lookup(ctx context.Context, d dep.Dependency) (any, error) {
	if r.fetch == nil {
		return nil, fmt.Errorf("%w: %s: this render has no Consul to look it up in", ErrLookup, d)
	}
	start := time.Now()
	v, err := r.fetch.Fetch(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrLookup, d, err)
	}
	r.log.Debug("template lookup", "dependency", d.String(), "took", time.Since(start))
	return v, nil
}

// executeError prefers the error a patchbay function returned, which keeps
// its sentinel; consul-template flattens execution errors into strings.
func executeError(name string, f *funcs, err error) error {
	if f.err != nil {
		return fmt.Errorf("template %s: %w", name, f.err)
	}
	msg := strings.TrimPrefix(err.Error(), "execute: ")
	msg = strings.TrimPrefix(strings.TrimPrefix(msg, "parse: "), "template: ")
	if !strings.HasPrefix(msg, ":") {
		msg = ": " + msg
	}
	return fmt.Errorf("%w %s%s", ErrTemplate, name, msg) // "bad template nginx:12:5: ..."
}

// environ is all a template's env function sees: the manifest's
// environment and every requirement, an unresolved one as "" (as bindings
// has it), then the node's (Data.NodeEnv); never patchbay's own process
// environment, which holds its tokens.
func environ(d *Data) []string {
	env, _ := Environ(d.Environment, d.Binding, d.NodeEnv, nil)
	return env
}

// envFuncs are env, mustEnv and envOrDefault over one environment.
type envFuncs []string

// lookup reads the last NAME=, as os/exec does for a command's
// environment, so a template and a command see the same value.
func (e envFuncs) lookup(name string) (string, bool) {
	for _, kv := range slices.Backward(e) {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

func (e envFuncs) get(name string) string { v, _ := e.lookup(name); return v }

func (e envFuncs) must(name string) (string, error) {
	if v, _ := e.lookup(name); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("mustEnv: %s is empty or not set; env sees the manifest's environment, its requirements and what listener.yaml's env passes", name)
}

func (e envFuncs) orDefault(name, def string) string {
	if v, ok := e.lookup(name); ok {
		return v
	}
	return def
}
