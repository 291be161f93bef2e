package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// deprecatedFlags are the old spellings of flags that were renamed for
// consistency, by command path and old name: the new name. They still
// work, hidden from help, and each use prints a deprecation line on stderr.
var deprecatedFlags = map[string]map[string]string{
	"patchbay console": {"addr": "http-addr"},
	"patchbay dev":     {"console": "http-addr"},
}

// addDeprecatedAliases gives every command of the tree the old spellings
// deprecatedFlags lists (TestDeprecatedAliases checks that each applies).
func addDeprecatedAliases(c *cobra.Command, stderr io.Writer) {
	visitCommands(c, func(c *cobra.Command) {
		for old, current := range deprecatedFlags[c.CommandPath()] {
			if target := c.Flags().Lookup(current); target != nil {
				addDeprecatedAlias(c.Flags(), target, stderr, old)
			}
		}
	})
}

// addDeprecatedAlias makes old a hidden spelling of the flag target of fs:
// setting it sets target (marked as changed, so "was it given" checks see
// it) and says on stderr what to write instead. cobra's own MarkDeprecated
// would print to the command's stdout, in the middle of --json output.
func addDeprecatedAlias(fs *pflag.FlagSet, target *pflag.Flag, stderr io.Writer, old string) {
	current := target.Name
	fs.Var(&aliasValue{fs: fs, target: target, old: old, stderr: stderr}, old, "deprecated spelling of --"+current)
	_ = fs.MarkHidden(old) // the flag was just added
}

// aliasValue is the value of a deprecated spelling: it forwards to the
// current flag.
type aliasValue struct {
	fs     *pflag.FlagSet
	target *pflag.Flag
	old    string
	stderr io.Writer
}

func (v *aliasValue) Set(s string) error {
	fmt.Fprintf(v.stderr, "patchbay: warning: --%s is deprecated and will be removed; use --%s\n", v.old, v.target.Name)
	return v.fs.Set(v.target.Name, s)
}

func (v *aliasValue) String() string { return v.target.Value.String() }
func (v *aliasValue) Type() string   { return v.target.Value.Type() }

// visitCommands calls fn for c and every command beneath it.
func visitCommands(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		visitCommands(sub, fn)
	}
}
