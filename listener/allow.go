package listener

import (
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

	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/templates"
)

// ErrRefused: listener.yaml's allow does not let a manifest use a command
// or template file on this node.
var ErrRefused = errkind.New(errkind.Input, "listener: refused by allow")

// AllowConfig is what manifests may make this node do as root: whoever can
// publish a manifest chooses its commands (provision, check, reload) and
// template sources, and the node's own listener.yaml has the last word.
// The node's services[].provision is the operator's and always allowed.
type AllowConfig struct {
	// Commands are argv patterns a manifest's command must match.
	Commands []CommandPattern `yaml:"commands"`
	// Sources are path globs a template's source path, and a path read by
	// consul-template's file function, must match.
	Sources []string `yaml:"sources"`
	// Destinations are path globs ({SERVICE} as in commands) a template's
	// destination must match (allow_dest.go).
	Destinations []string `yaml:"destinations"`
	// Defaults keeps DefaultAllowCommands, DefaultAllowSources and
	// DefaultAllowDestinations besides the lists above (nil: true).
	Defaults *bool `yaml:"defaults"`
}

// CommandPattern is one allowed command: a glob per argument (path.Match,
// where * stops at "/"), {SERVICE} standing for the service's id, and a
// last word "**" matching any further arguments. In listener.yaml it is a
// string of words separated by spaces, or a list when a word has spaces.
type CommandPattern []string

// UnmarshalYAML reads the string or the list form.
func (c *CommandPattern) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*c = strings.Fields(n.Value)
		return nil
	}
	var words []string
	if err := n.Decode(&words); err != nil {
		return err
	}
	*c = words
	return nil
}

// DefaultAllowCommands are the commands the builtin templates' examples
// use, for the manifest's own service only where they name a unit: a
// manifest can check and reload nginx and HAProxy and restart its own
// unit, and nothing else, unless listener.yaml says so.
var DefaultAllowCommands = []CommandPattern{
	{"nginx", "-t", "-c", manifest.StagedPlaceholder},
	{"nginx", "-t", "-q", "-c", manifest.StagedPlaceholder},
	{"nginx", "-s", "reload"},
	{"haproxy", "-c", "-f", manifest.StagedPlaceholder},
	{"haproxy", "-c", "-q", "-f", manifest.StagedPlaceholder},
	{"systemctl", "reload", "nginx"},
	{"systemctl", "reload", "haproxy"},
	{"systemctl", "reload", allowServicePlaceholder},
	{"systemctl", "restart", allowServicePlaceholder},
	{"systemctl", "reload-or-restart", allowServicePlaceholder},
}

// DefaultAllowSources is where an operator keeps template files for
// manifests to name.
var DefaultAllowSources = []string{"/etc/patchbay/templates/**"}

// allowServicePlaceholder in a command pattern is the service's id.
const allowServicePlaceholder = "{SERVICE}"

// allowRest as the last word of a pattern matches any further arguments.
const allowRest = "**"

func (a AllowConfig) defaults() bool { return a.Defaults == nil || *a.Defaults }

// Command reports whether a manifest of service may run argv on this node:
// the argv that runs, its placeholders expanded. A pattern's {STAGED}
// matches no argument here: only a check's staged path (command).
func (a AllowConfig) Command(service string, argv []string) bool {
	return a.command(service, "", argv)
}

// command is Command where a pattern's {STAGED} matches exactly staged,
// the path the listener staged a check's file at ("" for no check).
func (a AllowConfig) command(service, staged string, argv []string) bool {
	match := func(p CommandPattern) bool { return p.matches(service, staged, argv) }
	return slices.ContainsFunc(a.Commands, match) || (a.defaults() && slices.ContainsFunc(DefaultAllowCommands, match))
}

func (p CommandPattern) matches(service, staged string, argv []string) bool {
	// The values are quoted: a glob character in them matches only itself.
	r := strings.NewReplacer(allowServicePlaceholder, globQuote(service), manifest.StagedPlaceholder, globQuote(staged))
	for i, word := range p {
		if word == allowRest && i == len(p)-1 {
			return true
		}
		if i >= len(argv) || (staged == "" && strings.Contains(word, manifest.StagedPlaceholder)) {
			return false
		}
		ok, err := path.Match(r.Replace(word), argv[i])
		if err != nil || !ok {
			return false
		}
	}
	return len(p) == len(argv)
}

// globQuote escapes s for path.Match, so that it matches only itself.
func globQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`).Replace(s)
}

// Source reports whether templates may read the file at p (an absolute
// path; anything else is refused).
func (a AllowConfig) Source(p string) bool {
	if !path.IsAbs(p) {
		return false
	}
	p = path.Clean(p)
	match := func(glob string) bool { return sourceMatches(glob, p) }
	return slices.ContainsFunc(a.Sources, match) || (a.defaults() && slices.ContainsFunc(DefaultAllowSources, match))
}

// sourceMatches matches p against glob, where a last "/**" matches
// everything below what precedes it.
func sourceMatches(glob, p string) bool {
	if dir, ok := strings.CutSuffix(glob, "/"+allowRest); ok {
		depth := strings.Count(dir, "/")
		parts := strings.SplitAfterN(p, "/", depth+2)
		if len(parts) < depth+2 || parts[depth+1] == "" {
			return false
		}
		m, err := path.Match(dir, strings.TrimSuffix(strings.Join(parts[:depth+1], ""), "/"))
		return err == nil && m
	}
	m, err := path.Match(glob, p)
	return err == nil && m
}

// refusals lists what of p's manifest listener.yaml does not allow, each
// as "what it is: why", nil when everything is allowed. Commands are
// matched as they will run: a test's placeholders expanded as runTest
// expands them, a check's {STAGED} as a path staged beside its
// destination (the check is matched again on the real path before it
// runs).
func (a AllowConfig) refusals(cfg *Config, p *plan) (commands, sources []string) {
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
		if staged := templates.StagedExample(cfg.destination(t.Destination)); len(t.Check) > 0 && !a.command(service, staged, templates.ExpandStaged(t.Check, staged)) {
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
	commands, sources := cfg.Allow.refusals(cfg, p)
	destinations := cfg.Allow.destinationRefusals(p)
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
		if w == allowRest && i < len(words)-1 {
			l.report(n.Line, "%s: %q may only be the last word, where it matches any further arguments", label, allowRest)
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
			l.report(at, "allow.sources: %q is not an absolute path; give a glob from /, like %q", s, DefaultAllowSources[0])
			continue
		}
		if _, err := path.Match(strings.TrimSuffix(s, "/"+allowRest), ""); err != nil {
			l.report(at, "allow.sources: %q is not a valid glob (%v)", s, err)
		}
	}
}
