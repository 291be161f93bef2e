package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// namedArgs is every command's Args: it accepts the positional arguments
// its names list, as the usage line writes them, and names a missing one
// with the usage line, where cobra's ExactArgs only says "accepts 1
// arg(s), received 0". A last name ending in "..." takes one or more; no
// names at all takes none.
func namedArgs(names ...string) cobra.PositionalArgs {
	variadic := len(names) > 0 && strings.HasSuffix(names[len(names)-1], "...")
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			missing := strings.TrimSuffix(strings.Join(names[len(args):], " "), "...")
			return usageErrorf("missing %s\nUsage: %s", missing, cmd.UseLine())
		case len(args) > len(names) && !variadic:
			takes := "no arguments"
			if len(names) > 0 {
				takes = strings.Join(names, " ")
			}
			return usageErrorf("unexpected argument %q: %s takes %s\nUsage: %s", args[len(names)], cmd.CommandPath(), takes, cmd.UseLine())
		}
		return nil
	}
}

// refuseUnknownSubcommands gives every command that only groups others (a
// non-root command without its own RunE) one that refuses an unknown
// subcommand: cobra would print the group's help and exit 0, so a script
// calling `patchbay datastore lsit` would carry on as if it had worked.
func refuseUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !c.HasParent() || c.Runnable() || !c.HasSubCommands() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		hint := ""
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2 // cobra's default, set only on the way through root
		}
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			hint = fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return usageErrorf("unknown command %q for %q%s\nRun '%s --help' for its commands", args[0], cmd.CommandPath(), hint, cmd.CommandPath())
	}
}
