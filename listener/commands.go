package listener

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"

	dep "github.com/hashicorp/consul-template/dependency"
	"go.yaml.in/yaml/v3"

	"github.com/patchbay/patchbay/listener/command"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/templates"
)

// listener.yaml's allow and env are the command package's: these names
// keep the listener's API (and its config's field types) as they were.
type (
	AllowConfig    = command.AllowConfig
	CommandPattern = command.CommandPattern
	EnvConfig      = command.EnvConfig
)

// ErrRefused: listener.yaml's allow does not let a manifest use a command
// or template file on this node (command.ErrRefused).
var ErrRefused = command.ErrRefused

var _ command.Counter = (*Metrics)(nil)

// refusals lists what of p's manifest listener.yaml does not allow, each
// as "what it is: why", nil when everything is allowed. Commands are
// matched as they will run: a test's placeholders expanded as runTest
// expands them, a check's {STAGED} as a path staged beside its
// destination (the check is matched again on the real path before it
// runs).
func refusals(a AllowConfig, cfg *Config, p *plan) (commands, sources []string) {
	service := p.sc.Service
	cmd := func(what string, argv []string) {
		if len(argv) > 0 && !a.Command(service, argv) {
			commands = append(commands, fmt.Sprintf("%s %q", what, argv))
		}
	}
	if p.sc.Provision == nil && p.m.Provision != nil { // the node's own is always allowed
		cmd("provision command", p.m.Provision.Command)
	}
	for _, name := range slices.Sorted(maps.Keys(p.m.Templates)) {
		t := p.m.Templates[name]
		if staged := templates.StagedExample(cfg.destination(t.Destination)); len(t.Check) > 0 && !a.CheckCommand(service, staged, templates.ExpandStaged(t.Check, staged)) {
			commands = append(commands, fmt.Sprintf("check of template %s %q", name, t.Check))
		}
		cmd("reload of template "+name, t.Reload)
		if t.Source != "" && !strings.HasPrefix(t.Source, manifest.BuiltinPrefix) && !a.Source(t.Source) {
			sources = append(sources, fmt.Sprintf("source of template %s %q", name, t.Source))
		}
	}
	vars := manifest.TestVars(p.m, cfg.addrOf(p.sc), p.sc.Port, cfg.Node, cfg.Region)
	for _, t := range p.m.Tests {
		if argv, err := t.Argv(vars); err == nil { // else the test fails without running
			cmd("test "+t.Name, argv)
		}
	}
	return commands, sources
}

// refuse fails p when its manifest uses what listener.yaml does not allow,
// before anything of it is rendered or run, and reports it in the status,
// the metrics and the log.
func (l *Listener) refuse(cfg *Config, p *plan) bool {
	commands, sources := refusals(cfg.Allow, cfg, p)
	destinations := destinationRefusals(cfg.Allow, p)
	if len(commands) == 0 && len(sources) == 0 && len(destinations) == 0 {
		return false
	}
	var why []string
	for _, c := range commands {
		l.metrics.Refused("command")
		l.log.Error("manifest command refused by listener.yaml allow; not run", "service", p.sc.Service, "refused", c)
		why = append(why, c+" is not in allow.commands")
	}
	for _, s := range sources {
		l.metrics.Refused("source")
		l.log.Error("template source refused by listener.yaml allow; not read", "service", p.sc.Service, "refused", s)
		why = append(why, s+" is not in allow.sources")
	}
	for _, d := range destinations {
		l.metrics.Refused("destination")
		l.log.Error("template destination refused by listener.yaml allow; not installed", "service", p.sc.Service, "refused", d)
		why = append(why, d)
	}
	p.finish(ResultFailed, fmt.Sprintf("refused: %s; nothing of the service is applied until %s allows it or the manifest changes",
		strings.Join(why, "; "), cfg.File))
	return true
}

// allowFetcher refuses consul-template's file lookups of paths that
// allow.sources does not list: a template could otherwise read any file of
// the host (as root) into a file its author can read.
type allowFetcher struct {
	l    *Listener
	next templates.Fetcher
}

func (f *allowFetcher) Fetch(ctx context.Context, d dep.Dependency) (any, error) {
	if fq, ok := d.(*dep.FileQuery); ok {
		p := strings.TrimSuffix(strings.TrimPrefix(fq.String(), "file("), ")")
		cfg := f.l.cfg.Load()
		if !cfg.Allow.Source(p) {
			f.l.metrics.Refused("source")
			f.l.log.Error("template file lookup refused by listener.yaml allow; not read", "path", p)
			return nil, fmt.Errorf("%w: file %q is not in allow.sources of %s", ErrRefused, p, cfg.File)
		}
	}
	return f.next.Fetch(ctx, d)
}

var commandPatternType = reflect.TypeFor[CommandPattern]()

// commandPattern checks one allow.commands entry: a string of words or a
// list of them.
func (l *configLoader) commandPattern(n *yaml.Node, label string) bool {
	var words []string
	switch n.Kind {
	case yaml.ScalarNode:
		words = strings.Fields(n.Value)
	case yaml.SequenceNode:
		for _, w := range n.Content {
			if w.Kind != yaml.ScalarNode {
				l.report(w.Line, "%s: a word is %s; give the command as words, like \"nginx -s reload\" or [sh, -c, 'echo \"$1\"', sh, \"*\"]", label, manifest.NodeKind(w))
				return false
			}
			words = append(words, w.Value)
		}
	default:
		l.report(n.Line, "%s: expected a command, found %s; give it as words, like \"nginx -s reload\" or [sh, -c, 'echo \"$1\"', sh, \"*\"]", label, manifest.NodeKind(n))
		return false
	}
	if len(words) == 0 || words[0] == "" {
		l.report(n.Line, "%s: an empty command; give the program and its arguments, like \"nginx -s reload\"", label)
		return false
	}
	for i, w := range words {
		if _, err := path.Match(w, ""); err != nil {
			l.report(n.Line, "%s: word %q is not a valid glob (%v); escape [ ] * ? with \\", label, w, err)
			return false
		}
		if w == command.Rest && i < len(words)-1 {
			l.report(n.Line, "%s: %q may only be the last word, where it matches any further arguments", label, command.Rest)
			return false
		}
	}
	return true
}

// allow checks allow.sources; allow.commands were checked while parsing.
func (l *configLoader) allow(a *AllowConfig) {
	for i, s := range a.Sources {
		at := l.line("allow", "sources", strconv.Itoa(i))
		if !path.IsAbs(s) {
			l.report(at, "allow.sources: %q is not an absolute path; give a glob from /, like %q", s, command.DefaultAllowSources[0])
			continue
		}
		if _, err := path.Match(strings.TrimSuffix(s, "/"+command.Rest), ""); err != nil {
			l.report(at, "allow.sources: %q is not a valid glob (%v)", s, err)
		}
	}
}

// destinationRefusals lists the destinations of p's templates that
// listener.yaml does not allow, each as "what it is: why".
func destinationRefusals(a AllowConfig, p *plan) []string {
	var refused []string
	for _, name := range slices.Sorted(maps.Keys(p.m.Templates)) {
		t := p.m.Templates[name]
		switch {
		case t.Destination == "": // not installed; the render says so
		case path.Clean(t.Destination) != t.Destination || !path.IsAbs(t.Destination):
			refused = append(refused, fmt.Sprintf("destination of template %s %q is not a clean absolute path (no \"..\", \"//\" or trailing \"/\")", name, t.Destination))
		case !a.Destination(p.sc.Service, t.Source, t.Destination):
			refused = append(refused, fmt.Sprintf("destination of template %s %q is not in allow.destinations", name, t.Destination))
		}
	}
	return refused
}

// confinedRoot is the directory every destination is installed beneath.
func (c *Config) confinedRoot() string { return cmp.Or(c.Root, "/") }

// allowDestinations checks allow.destinations: absolute, clean globs.
func (l *configLoader) allowDestinations(a *AllowConfig) {
	for i, d := range a.Destinations {
		at := l.line("allow", "destinations", strconv.Itoa(i))
		dir := cmp.Or(strings.TrimSuffix(d, "/"+command.Rest), "/")
		if !path.IsAbs(d) || path.Clean(dir) != dir {
			l.report(at, "allow.destinations: %q is not a clean absolute path; give a glob from /, like %q", d, command.DefaultAllowDestinations[0])
			continue
		}
		if _, err := path.Match(strings.ReplaceAll(dir, command.ServicePlaceholder, "x"), ""); err != nil {
			l.report(at, "allow.destinations: %q is not a valid glob (%v)", d, err)
		}
	}
}

// commandEnv is a provision command's and a test's environment: the
// manifest's environment and every requirement's value, then the node's
// (which wins), then PATCHBAY_*. The manifest's names that are unsafe or
// the node's own are left out, each in dropped.
func commandEnv(cfg *Config, fed string, p *plan) (env, dropped []string) {
	env, dropped = templates.Environ(p.m.Environment, p.binding, cfg.Env.Node(), command.UnsafeEnvName)
	return append(env,
		"PATCHBAY_SERVICE="+p.sc.Service,
		"PATCHBAY_FEDERATION="+fed,
		"PATCHBAY_NODE="+cfg.Node,
		"PATCHBAY_REGION="+cfg.Region,
		"PATCHBAY_REVISION="+strconv.FormatUint(p.report.Revision, 10),
	), dropped
}

// env checks listener.yaml's env.
func (l *configLoader) env(e *EnvConfig) {
	check := func(at int, key, name string) {
		switch {
		case !command.EnvName(name):
			l.report(at, "env.%s: %q is not an environment variable name; use letters, digits and _, not starting with a digit", key, name)
		case command.OwnEnv(name):
			l.report(at, "env.%s: %s is the listener's own (its credentials, or what it gives commands itself); templates and commands never see it", key, name)
		}
	}
	for i, name := range e.Pass {
		check(l.line("env", "pass", strconv.Itoa(i)), "pass", name)
	}
	for _, name := range slices.Sorted(maps.Keys(e.Set)) {
		check(l.line("env", "set", name), "set", name)
	}
}
