package listener

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/patchbay/patchbay/templates"
)

// EnvConfig is what of the node's environment templates and commands see
// besides PATH. The listener's own environment holds its Consul and NATS
// credentials, so nothing else of it reaches them.
type EnvConfig struct {
	// Pass names variables of the listener's environment to pass on.
	Pass []string `yaml:"pass"`
	// Set gives variables their values.
	Set map[string]string `yaml:"set"`
}

// envNamePattern is a portable environment variable name.
var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// listenerOwnEnv are names listener.yaml may neither pass nor set: the
// listener's credentials (read from its environment) and the PATCHBAY_
// names it gives commands itself.
func listenerOwnEnv(name string) bool {
	return strings.HasPrefix(name, "PATCHBAY_") || name == "CONSUL_HTTP_TOKEN" || name == "NATS_CREDS"
}

// nodeEnv is the node's part of every template's and command's
// environment: PATH, then listener.yaml's env.pass and env.set.
func nodeEnv(cfg *Config) []string {
	env := templates.BaseEnv()
	for _, k := range cfg.Env.Pass {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Env.Set)) {
		env = append(env, k+"="+cfg.Env.Set[k])
	}
	return env
}

// unsafeEnvNames are names a manifest's environment and requirements do
// not give commands: they choose what code a program loads or how a shell
// starts, not what it is told, so a manifest's value would run code of
// its own as root.
var unsafeEnvNames = []string{
	"PATH", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "GCONV_PATH", "LOCPATH", "NLSPATH",
	"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PERL5LIB", "PERL5OPT", "PERL5DB", "RUBYLIB", "RUBYOPT",
	"NODE_OPTIONS", "NODE_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
}

func unsafeEnvName(name string) bool {
	return strings.HasPrefix(name, "LD_") || strings.HasPrefix(name, "DYLD_") || strings.HasPrefix(name, "PATCHBAY_") ||
		slices.Contains(unsafeEnvNames, name)
}

// commandEnv is a provision command's and a test's environment: the
// manifest's environment and every requirement's value, then the node's
// (which wins), then PATCHBAY_*. The manifest's names that are unsafe or
// the node's own are left out, each in dropped.
func commandEnv(cfg *Config, fed string, p *plan) (env, dropped []string) {
	env, dropped = templates.Environ(p.m.Environment, p.binding, nodeEnv(cfg), unsafeEnvName)
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
		case !envNamePattern.MatchString(name):
			l.report(at, "env.%s: %q is not an environment variable name; use letters, digits and _, not starting with a digit", key, name)
		case listenerOwnEnv(name):
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
