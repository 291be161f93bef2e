package templates

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"sync"
	"testing"
	"text/template"
	_ "unsafe" // go:linkname, for consul-template's function map

	ctconfig "github.com/hashicorp/consul-template/config"
	dep "github.com/hashicorp/consul-template/dependency"
	ctemplate "github.com/hashicorp/consul-template/template"
)

// consul-template's Template.Execute builds its whole function map (its
// own, Sprig's and ours: some 300 closures, each checked by reflection)
// and parses the template on every call; on a listener that is most of a
// render. A parsed engine does what Execute does once, and then only
// executes: the functions are consul-template's own (reached through the
// unexported funcMap that Execute calls), the template language is
// text/template configured as Execute configures it, and the per-execution
// state Execute creates afresh (used and missing sets, scratch, brain,
// patchbay's data) is reset before every execution instead.

// ctFuncMapInput mirrors consul-template's funcMapInput field for field.
// It is only used with the version it was checked against (ctVersion); a
// test renders every builtin and testdata template both ways.
// Fields left blank are the ones Render never sets, as newEngineTemplate
// never sets them: env (patchbay's env functions replace consul-template's),
// sandboxPath, destination and config.
type ctFuncMapInput struct {
	newTmpl          *template.Template
	brain            *ctemplate.Brain
	_                []string // env
	extFuncMap       map[string]any
	functionDenylist []string
	_                string // sandboxPath
	_                string // destination
	used             *dep.Set
	missing          *dep.Set
	_                *ctconfig.Config // config
}

//go:linkname ctFuncMap github.com/hashicorp/consul-template/template.funcMap
func ctFuncMap(i *ctFuncMapInput) template.FuncMap

//go:linkname ctRedact github.com/hashicorp/consul-template/template.redactinator
func ctRedact(used *dep.Set, b *ctemplate.Brain, err error) error

// ctVersion is the consul-template whose funcMapInput ctFuncMapInput
// mirrors. Built against another, templates take Execute's path.
const ctVersion = "v0.41.1"

// parseOnce reports whether parsed engines may be used: only with the
// consul-template version whose layout was checked. Test binaries carry no
// module list; there TestEngineVersion holds go.mod to ctVersion.
var parseOnce = sync.OnceValue(func() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, m := range bi.Deps {
		if m.Path == "github.com/hashicorp/consul-template" {
			return m.Version == ctVersion && m.Replace == nil
		}
	}
	return len(bi.Deps) == 0 && testing.Testing()
})

// engine is one template parsed with its functions bound to its own
// per-execution state. It is used by one render at a time (enginePool).
type engine struct {
	tmpl    *template.Template
	f       funcs
	brain   *ctemplate.Brain
	used    dep.Set
	missing dep.Set
	scratch ctemplate.Scratch
	learned []dep.Dependency // what the current render put in brain
}

// newEngine parses contents as Execute would.
func newEngine(contents string) (*engine, error) {
	e := &engine{brain: ctemplate.NewBrain()}
	tmpl := template.New("")
	tmpl.Delims("", "")
	ext := e.f.funcMap()
	// Execute's scratch is a fresh local per call; this one is reset.
	ext["scratch"] = func() *ctemplate.Scratch { return &e.scratch }
	tmpl.Funcs(ctFuncMap(&ctFuncMapInput{
		newTmpl:          tmpl,
		brain:            e.brain,
		extFuncMap:       ext,
		functionDenylist: denied,
		used:             &e.used,
		missing:          &e.missing,
	}))
	tmpl.Option("missingkey=error")
	if _, err := tmpl.Parse(contents); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	e.tmpl = tmpl
	return e, nil
}

// begin readies e for a render of data.
func (e *engine) begin(data *Data) {
	e.f.reset(data)
	for _, d := range e.learned {
		e.brain.Forget(d)
	}
	e.learned = e.learned[:0]
}

// remember is Brain.Remember, undone by the next begin.
func (e *engine) remember(d dep.Dependency, v any) {
	e.brain.Remember(d, v)
	e.learned = append(e.learned, d)
}

// execute is Template.Execute without the function map and the parse.
func (e *engine) execute() (*ctemplate.ExecuteResult, error) {
	e.used, e.missing, e.scratch = dep.Set{}, dep.Set{}, ctemplate.Scratch{}
	var b bytes.Buffer
	if err := e.tmpl.Execute(&b, nil); err != nil {
		return nil, fmt.Errorf("execute: %w", ctRedact(&e.used, e.brain, err))
	}
	return &ctemplate.ExecuteResult{Used: &e.used, Missing: &e.missing, Output: b.Bytes()}, nil
}

// enginePool keeps parsed engines by template contents for the whole
// process: thousands of listeners in one process (the fleet simulation)
// share a few engines rather than hold one each.
type enginePool struct {
	mu   sync.Mutex
	idle map[string][]*engine
}

const (
	poolTemplates = 256 // distinct contents kept; beyond, the pool starts over
	poolIdle      = 32  // idle engines kept per contents: renders at once in one process
)

var engines = &enginePool{idle: map[string][]*engine{}}

// get returns an idle engine for contents, or parses a new one.
func (p *enginePool) get(contents string) (*engine, error) {
	p.mu.Lock()
	if l := p.idle[contents]; len(l) > 0 {
		e := l[len(l)-1]
		p.idle[contents] = l[:len(l)-1]
		p.mu.Unlock()
		return e, nil
	}
	p.mu.Unlock()
	return newEngine(contents)
}

// put returns e, done with, to the pool.
func (p *enginePool) put(contents string, e *engine) {
	e.f.reset(nil) // the render's data is not kept alive by the pool
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.idle[contents]; !ok && len(p.idle) >= poolTemplates {
		clear(p.idle)
	}
	if len(p.idle[contents]) < poolIdle {
		p.idle[contents] = append(p.idle[contents], e)
	}
}
