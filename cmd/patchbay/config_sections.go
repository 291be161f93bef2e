package main

import (
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// A daemon's own settings may live in the --config file too, under a
// section named after the command, its flags without dashes as keys:
//
//	resolver:
//	  quiet: 1s
//	  http-addr: 127.0.0.1:9102
//
// with the global settings' precedence: defaults < config file <
// environment < flags. A command opts in with the sectionAnnotation.
const sectionAnnotation = "patchbay/config-section"

// envAnnotation, on a flag, names the environment variable that sets it;
// the variable beats the config file.
const envAnnotation = "patchbay/env"

// sectionNames are the sections commands declare, which listener.yaml's
// strict loader lets by (TestConfigSectionNames keeps the list whole).
var sectionNames = []string{"resolver"}

// configSections lists, by section name, the keys each opted-in command's
// section may hold: its visible flags.
func configSections(root *cobra.Command) map[string][]string {
	sections := map[string][]string{}
	visitCommands(root, func(c *cobra.Command) {
		name, ok := c.Annotations[sectionAnnotation]
		if !ok {
			return
		}
		keys := []string{}
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && f.Name != "help" {
				keys = append(keys, f.Name)
			}
		})
		sections[name] = keys
	})
	return sections
}

// applySectionSettings sets each flag of cmd's section that neither the
// command line nor its environment variable set from the config file.
func (a *app) applySectionSettings(cmd *cobra.Command, v *viper.Viper) error {
	section, ok := cmd.Annotations[sectionAnnotation]
	if !ok || a.g.ConfigFile == "" {
		return nil
	}
	var err error
	cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
		key := section + "." + f.Name
		if err != nil || f.Changed || f.Hidden || !v.IsSet(key) || envSet(f) {
			return
		}
		if serr := cmd.Flags().Set(f.Name, v.GetString(key)); serr != nil {
			err = usageErrorf("config file %s: %s: %q: %v", a.g.ConfigFile, key, v.GetString(key), serr)
		}
	})
	return err
}

// envSet reports whether the environment variable of f is set.
func envSet(f *pflag.Flag) bool {
	for _, name := range f.Annotations[envAnnotation] {
		if os.Getenv(name) != "" {
			return true
		}
	}
	return false
}
