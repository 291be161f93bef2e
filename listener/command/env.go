package command

import (
	"maps"
	"os"
	"regexp"
	"slices"
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

// EnvName reports whether name is a portable environment variable name.
func EnvName(name string) bool { return envNamePattern.MatchString(name) }

// OwnEnv are names listener.yaml may neither pass nor set: the
// listener's credentials (read from its environment) and the PATCHBAY_
// names it gives commands itself.
func OwnEnv(name string) bool {
	return strings.HasPrefix(name, "PATCHBAY_") || name == "CONSUL_HTTP_TOKEN" || name == "NATS_CREDS"
}

// Node is the node's part of every template's and command's
// environment: PATH, then listener.yaml's env.pass and env.set.
func (e EnvConfig) Node() []string {
	env := templates.BaseEnv()
	for _, k := range e.Pass {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(e.Set)) {
		env = append(env, k+"="+e.Set[k])
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

// UnsafeEnvName reports whether a manifest may not give a command name
// (unsafeEnvNames, the dynamic loader's and the listener's own).
func UnsafeEnvName(name string) bool {
	return strings.HasPrefix(name, "LD_") || strings.HasPrefix(name, "DYLD_") || strings.HasPrefix(name, "PATCHBAY_") ||
		slices.Contains(unsafeEnvNames, name)
}
