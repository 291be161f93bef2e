package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/patchbay/patchbay/internal/suggest"
	"github.com/patchbay/patchbay/listener"
	"github.com/patchbay/patchbay/manifest"
)

// globals are the settings every command shares, resolved with the
// precedence defaults < config file < environment < flags.
type globals struct {
	ConsulAddr  string
	ConsulToken string
	NATSURL     string
	NATSCreds   string // NATS .creds file: user JWT and NKey seed
	NATSNKey    string // NATS NKey seed file
	NATSCA      string // PEM CA bundle that verifies the NATS server
	NATSCert    string // PEM client certificate for mutual TLS...
	NATSKey     string // ...and its private key
	Prefix      string
	Federation  string
	ConfigFile  string
	Timeout     time.Duration
}

// setting is one global: its flag, default, environment variables (first
// set wins) and help.
type setting struct {
	name, def, help string
	env             []string
	dst             func(*globals) *string
}

var settings = []setting{
	{"consul-addr", "127.0.0.1:8500", "Consul HTTP address", []string{"PATCHBAY_CONSUL_ADDR", "CONSUL_HTTP_ADDR"}, func(g *globals) *string { return &g.ConsulAddr }},
	{"consul-token", "", "Consul ACL token", []string{"PATCHBAY_CONSUL_TOKEN", "CONSUL_HTTP_TOKEN"}, func(g *globals) *string { return &g.ConsulToken }},
	{"nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated", []string{"PATCHBAY_NATS_URL", "NATS_URL"}, func(g *globals) *string { return &g.NATSURL }},
	{"nats-creds", "", "NATS credentials file (user JWT and NKey seed, from nsc)", []string{"PATCHBAY_NATS_CREDS", "NATS_CREDS"}, func(g *globals) *string { return &g.NATSCreds }},
	{"nats-nkey", "", "NATS NKey user seed file (SU...)", []string{"PATCHBAY_NATS_NKEY"}, func(g *globals) *string { return &g.NATSNKey }},
	{"nats-ca", "", "PEM CA bundle that verifies the NATS server; implies TLS", []string{"PATCHBAY_NATS_CA"}, func(g *globals) *string { return &g.NATSCA }},
	{"nats-cert", "", "PEM client certificate for mutual TLS with NATS (with --nats-key)", []string{"PATCHBAY_NATS_CERT"}, func(g *globals) *string { return &g.NATSCert }},
	{"nats-key", "", "PEM private key of --nats-cert", []string{"PATCHBAY_NATS_KEY"}, func(g *globals) *string { return &g.NATSKey }},
	{"prefix", "patchbay/", "Consul KV prefix that holds patchbay's data", []string{"PATCHBAY_PREFIX"}, func(g *globals) *string { return &g.Prefix }},
	{"federation", manifest.DefaultFederation, "federation of the services a command names", []string{"PATCHBAY_FEDERATION"}, func(g *globals) *string { return &g.Federation }},
}

// app is what the commands share: output streams and the resolved globals.
type app struct {
	stdout, stderr io.Writer
	viper          *viper.Viper
	g              globals
	logLevel       slog.LevelVar
	logFormat      string           // "text" or "json"
	listenerConfig *listener.Config // --config as listener.yaml, loaded once for the commands that read it
	globalLog      bool             // install the logger as slog's default and the standard logger's
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	return newApp(stdout, stderr).rootCmd()
}

func newApp(stdout, stderr io.Writer) *app {
	return &app{stdout: stdout, stderr: stderr, viper: viper.New()}
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "patchbay",
		Short: "Bind service requirements to live providers and keep every host's files in step",
		Long: `patchbay is a service registry and dependency resolver for clusters.

Services declare in a manifest what they provide (API_URL = http://{HOST}:{PORT})
and what they require (DATABASE_URL). The resolver binds requirements to live
providers through Consul KV; a listener on every host turns NATS notifications
into one queued, throttled provision run that re-renders env files and
load-balancer configs and runs reload and provision commands.

Settings come from flags, then PATCHBAY_* environment variables (and Consul's
and NATS's own: CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, NATS_URL, NATS_CREDS), then the
--config file, then defaults. --config is one file per host: the global
settings, listener.yaml's keys (patchbay listen) and a resolver: section
(patchbay resolver) may all live in it.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return a.loadGlobals(cmd) },
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath())
	})
	flags := root.PersistentFlags()
	flags.StringVar(&a.g.ConfigFile, "config", "", "this host's config file (YAML, JSON or TOML): these flags' settings by name, listener.yaml's keys (for listen) and a resolver: section (for resolver) [$PATCHBAY_CONFIG]")
	for _, s := range settings {
		flags.String(s.name, s.def, fmt.Sprintf("%s [$%s]", s.help, strings.Join(s.env, ", $")))
	}
	flags.DurationVar(&a.g.Timeout, "timeout", 10*time.Second, "bound on each Consul request that is not a long-running watch [$PATCHBAY_TIMEOUT]")
	flags.Var(&levelFlag{&a.logLevel}, "log-level", "log level: debug, info, warn, error [$PATCHBAY_LOG_LEVEL]")
	flags.Var(formatFlag{&a.logFormat}, "log-format", "log format: text or json (one object a line) [$PATCHBAY_LOG_FORMAT]")
	root.AddCommand(newVersionCmd(a), newValidateCmd(a), newPublishCmd(a), newUnpublishCmd(a), newRegisterCmd(a), newDatastoreCmd(a),
		newResolveCmd(a), newExplainCmd(a), newGraphCmd(a), newOrderCmd(a), newResolverCmd(a), newRenderCmd(a),
		newPauseCmd(a), newResumeCmd(a), newProvisionCmd(a), newStatusCmd(a), newRolloutCmd(a), newWaitCmd(a))
	root.AddCommand(newListenCmd(a), newDevCmd(a), newKeygenCmd(a))
	root.AddCommand(newPlanCmd(a), newImpactCmd(a), newConsoleCmd(a))
	refuseUnknownSubcommands(root)
	markCommandErrors(root)
	addDeprecatedAliases(root, a.stderr)
	return root
}

// loadGlobals resolves the shared settings once flags are parsed.
func (a *app) loadGlobals(cmd *cobra.Command) error {
	v := a.viper
	flags := cmd.Root().PersistentFlags()
	for _, s := range settings {
		if err := v.BindPFlag(s.name, flags.Lookup(s.name)); err != nil {
			return fmt.Errorf("bind flag %s: %w", s.name, err)
		}
		if err := v.BindEnv(append([]string{s.name}, s.env...)...); err != nil {
			return fmt.Errorf("bind environment for %s: %w", s.name, err)
		}
	}
	if a.g.ConfigFile == "" {
		a.g.ConfigFile = os.Getenv("PATCHBAY_CONFIG")
	}
	if a.g.ConfigFile != "" {
		if cmd.Annotations[configAnnotation] == configListener {
			// listener.yaml's loader names file:line; the generic reader
			// below would only say that the file is unreadable. The
			// command uses what it loaded: the file is parsed once for it.
			cfg, err := a.loadListenerConfig()
			if err != nil {
				return err
			}
			a.listenerConfig = cfg
		}
		if err := readConfigFile(v, a.g.ConfigFile, configSections(cmd.Root())); err != nil {
			return err
		}
	}
	if err := a.applyTypedSettings(cmd, v); err != nil {
		return err
	}
	if err := a.applySectionSettings(cmd, v); err != nil {
		return err
	}
	a.installGlobalLog()
	for _, s := range settings {
		*s.dst(&a.g) = v.GetString(s.name)
	}
	if !manifest.IsDNSLabel(a.g.Federation) {
		return usageErrorf("--federation %q is not a DNS label; use lower-case letters, digits and \"-\"", a.g.Federation)
	}
	return nil
}

// configAnnotation marks a command whose --config is listener.yaml.
const (
	configAnnotation = "patchbay/config"
	configListener   = "listener.yaml"
)

// fileOnlyKeys are settings a config file may hold beyond the flags in
// settings.
var fileOnlyKeys = []string{"timeout", "log-level", "log-format"}

// readConfigFile merges the config file into v, rejecting keys that are no
// setting so that a typo does not silently fall back to a default.
// sections are the commands' own sections (resolver:) and their keys.
func readConfigFile(v *viper.Viper, path string, sections map[string][]string) error {
	file := viper.New()
	file.SetConfigFile(path)
	if err := file.ReadInConfig(); err != nil {
		return usageErrorf("config file %s: %s; fix it or leave out --config", path, configErrorText(err))
	}
	for _, k := range file.AllKeys() {
		top, sub, _ := strings.Cut(k, ".")
		if slices.Contains(listener.ConfigKeys(), top) || slices.Contains(fileOnlyKeys, k) {
			continue // listener.yaml's own keys (patchbay listen reads them), and the file-only settings
		}
		if keys, ok := sections[top]; ok {
			if !slices.Contains(keys, sub) {
				return usageErrorf("config file %s: unknown key %q in %s:%s; its keys are the flags of patchbay %s without dashes", path, sub, top, closest(sub, keys), top)
			}
			continue
		}
		if !slices.ContainsFunc(settings, func(s setting) bool { return s.name == k }) {
			return usageErrorf("config file %s: unknown key %q%s; the keys are the global flags without dashes", path, k, didYouMean(k))
		}
	}
	if err := v.MergeConfigMap(file.AllSettings()); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// didYouMean names the closest setting to a mistyped key.
func didYouMean(k string) string {
	names := make([]string, len(settings))
	for i, s := range settings {
		names[i] = s.name
	}
	return closest(k, names)
}

// closest is " (did you mean …?)" naming the closest of names to k, or "".
func closest(k string, names []string) string {
	if s, ok := suggest.Closest(k, names); ok {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

func configErrorText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// markCommandErrors wraps every command's RunE so that main can tell an
// error of the command itself from cobra refusing the command line.
func markCommandErrors(c *cobra.Command) {
	for _, sub := range c.Commands() {
		markCommandErrors(sub)
	}
	for _, hook := range []*func(*cobra.Command, []string) error{&c.RunE, &c.PersistentPreRunE} {
		if fn := *hook; fn != nil {
			*hook = func(cmd *cobra.Command, args []string) error {
				if err := fn(cmd, args); err != nil {
					return commandError{err}
				}
				return nil
			}
		}
	}
}

// levelFlag is a --log-level value.
type levelFlag struct{ v *slog.LevelVar }

func (f *levelFlag) String() string {
	if f.v == nil {
		return "info"
	}
	return strings.ToLower(f.v.Level().String())
}
func (f *levelFlag) Set(s string) error { return f.v.UnmarshalText([]byte(s)) }
func (f *levelFlag) Type() string       { return "level" }
