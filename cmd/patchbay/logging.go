package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// logger writes structured logs to stderr, as --log-format says.
func (a *app) logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: &a.logLevel}
	if a.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(a.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(a.stderr, opts))
}

// ownGlobalLog makes the app install its logger as the process's: slog's
// default and the standard library's global logger, which libraries write
// to. Only main does; commands run in tests keep to their own streams.
func ownGlobalLog(a *app) { a.globalLog = true }

// installGlobalLog routes slog.Default() and the standard logger through
// the app's logger, once --log-level and --log-format are known. Until
// then slog's default handler writes warnings through the standard logger,
// which routed them to debug: a library's slog.Default().Warn printed
// nothing.
func (a *app) installGlobalLog() {
	if !a.globalLog {
		return
	}
	slog.SetDefault(a.logger())
	routeStdLog(a.logger()) // after SetDefault, which points the standard logger at its handler
}

// typedSetting is a global that is no string: its flag parses it, from
// the flag, the environment or the config file.
type typedSetting struct{ name, env, hint string }

var typedSettings = []typedSetting{
	{"timeout", "PATCHBAY_TIMEOUT", `is not a duration; write it like "10s"`},
	{"log-level", "PATCHBAY_LOG_LEVEL", "is no level; give debug, info, warn or error"},
	{"log-format", "PATCHBAY_LOG_FORMAT", "is no log format; give text or json"},
}

// applyTypedSettings sets each typed setting not given as a flag from its
// environment variable, else from the config file (already merged into v).
func (a *app) applyTypedSettings(cmd *cobra.Command, v *viper.Viper) error {
	flags := cmd.Root().PersistentFlags()
	for _, s := range typedSettings {
		if flags.Changed(s.name) {
			continue
		}
		val, from := os.Getenv(s.env), "$"+s.env
		if val == "" {
			if a.g.ConfigFile == "" || !v.IsSet(s.name) {
				continue
			}
			val, from = v.GetString(s.name), "config file "+a.g.ConfigFile
		}
		if err := flags.Set(s.name, val); err != nil {
			return usageErrorf("%s: %s %q %s", from, s.name, val, s.hint)
		}
	}
	return nil
}

// formatFlag is a --log-format value.
type formatFlag struct{ v *string }

func (f formatFlag) String() string {
	if f.v == nil || *f.v == "" {
		return "text"
	}
	return *f.v
}

func (f formatFlag) Set(s string) error {
	switch s = strings.ToLower(s); s {
	case "text", "json":
		*f.v = s
		return nil
	}
	return fmt.Errorf("%q: give text or json", s)
}

func (f formatFlag) Type() string { return "format" }
