// Package command is the listener's command execution: what listener.yaml
// lets a manifest run, read and install as root (allow), the environment
// a command gets, the shell patterns that would let a manifest add code of
// its own, and how a command runs and its output is logged. It knows the
// manifest and the templates' runner, never the listener's run.
package command

import (
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/patchbay/patchbay/manifest"
)

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
	// destination must match (dest.go).
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
	{"systemctl", "reload", ServicePlaceholder},
	{"systemctl", "restart", ServicePlaceholder},
	{"systemctl", "reload-or-restart", ServicePlaceholder},
}

// DefaultAllowSources is where an operator keeps template files for
// manifests to name.
var DefaultAllowSources = []string{"/etc/patchbay/templates/**"}

// ServicePlaceholder in a command pattern is the service's id.
const ServicePlaceholder = "{SERVICE}"

// Rest as the last word of a pattern matches any further arguments.
const Rest = "**"

func (a AllowConfig) defaults() bool { return a.Defaults == nil || *a.Defaults }

// Command reports whether a manifest of service may run argv on this node:
// the argv that runs, its placeholders expanded. A pattern's {STAGED}
// matches no argument here: only a check's staged path (CheckCommand).
func (a AllowConfig) Command(service string, argv []string) bool {
	return a.CheckCommand(service, "", argv)
}

// CheckCommand is Command where a pattern's {STAGED} matches exactly
// staged, the path the listener staged a check's file at ("" for no check).
func (a AllowConfig) CheckCommand(service, staged string, argv []string) bool {
	match := func(p CommandPattern) bool { return p.matches(service, staged, argv) }
	return slices.ContainsFunc(a.Commands, match) || (a.defaults() && slices.ContainsFunc(DefaultAllowCommands, match))
}

func (p CommandPattern) matches(service, staged string, argv []string) bool {
	// The values are quoted: a glob character in them matches only itself.
	r := strings.NewReplacer(ServicePlaceholder, globQuote(service), manifest.StagedPlaceholder, globQuote(staged))
	for i, word := range p {
		if word == Rest && i == len(p)-1 {
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
	if dir, ok := strings.CutSuffix(glob, "/"+Rest); ok {
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
