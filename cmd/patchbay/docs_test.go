package main

import (
	stdflag "flag"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

var update = stdflag.Bool("update", false, "rewrite golden files (docs/cli)")

// cliDocs holds the generated CLI reference, one Markdown file a command.
const cliDocs = "../../docs/cli"

const updateHint = "run `go test ./cmd/patchbay -run TestCLIReference -update` and review the diff"

// TestCLIReference keeps docs/cli, the CLI reference generated from the
// commands' help, in step with the commands.
func TestCLIReference(t *testing.T) {
	got := generateCLIReference(t)
	if *update {
		writeCLIReference(t, got)
		return
	}
	want := readMarkdown(t, cliDocs)
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(got)) {
		w, ok := want[name]
		switch {
		case !ok:
			problems = append(problems, "docs/cli/"+name+" is missing")
		case w != got[name]:
			diff, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
				A: difflib.SplitLines(w), B: difflib.SplitLines(got[name]),
				FromFile: "docs/cli/" + name, ToFile: "generated", Context: 2,
			})
			problems = append(problems, "docs/cli/"+name+" is out of date:\n"+diff)
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			problems = append(problems, "docs/cli/"+name+" documents no command")
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		t.Errorf("the CLI reference in docs/cli differs from the commands' help; %s\n\n%s", updateHint, strings.Join(problems, "\n"))
	}
}

// generateCLIReference renders the Markdown reference of every command,
// by file name.
func generateCLIReference(t *testing.T) map[string]string {
	t.Helper()
	// Defaults read from the environment when the commands are built (the
	// control commands' --control reads $PATCHBAY_CONTROL) must not leak
	// this machine's settings into the reference.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PATCHBAY_") || strings.HasPrefix(k, "CONSUL_") || strings.HasPrefix(k, "NATS_") {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
	root := newRootCmd(io.Discard, io.Discard)
	root.InitDefaultCompletionCmd() // added by Execute; users can run it, so it is documented
	machine := machineValues(t)
	visitCommands(root, func(c *cobra.Command) {
		c.DisableAutoGenTag = true // no date in the files
		c.Flags().VisitAll(func(f *pflag.Flag) { stableDefault(f, machine) })
	})

	dir := t.TempDir()
	identity := func(s string) string { return s }
	if err := doc.GenMarkdownTreeCustom(root, dir, func(string) string { return "" }, identity); err != nil {
		t.Fatalf("generate the CLI reference: %v", err)
	}
	files := readMarkdown(t, dir)
	if len(files) == 0 {
		t.Fatal("generated no CLI reference")
	}
	// A value of this machine that slipped through would make the
	// reference differ from one host to the next.
	for name, text := range files {
		for _, m := range machine {
			if m.leak != "" && strings.Contains(text, m.leak) {
				t.Errorf("%s shows %s (%s); give the flag a stable default and say in its help what it means, or replace it in stableDefault", name, m.what, m.leak)
			}
		}
	}
	return files
}

// machineValue is a value that differs between machines, and how the
// reference writes it instead.
type machineValue struct {
	value, stable, what string
	leak                string // text that must not appear in the reference
}

func machineValues(t *testing.T) []machineValue {
	t.Helper()
	var ms []machineValue
	if host, err := os.Hostname(); err == nil && host != "" {
		// As a default, pflag quotes it; the host name alone may be a
		// common word.
		ms = append(ms, machineValue{value: host, what: "the host name", leak: `"` + host + `"`})
	}
	if wd, err := os.Getwd(); err == nil && wd != "/" {
		ms = append(ms, machineValue{value: wd, stable: "$PWD", what: "the working directory", leak: wd})
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" && home != "/" {
		ms = append(ms, machineValue{value: home, stable: "$HOME", what: "the home directory", leak: home + "/"})
	}
	if tmp := os.TempDir(); tmp != "" && tmp != "/" {
		ms = append(ms, machineValue{value: tmp, stable: "$TMPDIR", what: "the temporary directory"})
	}
	// Longest first: the working directory may be inside the home one.
	slices.SortFunc(ms, func(a, b machineValue) int { return len(b.value) - len(a.value) })
	return ms
}

// stableDefault rewrites a flag default that depends on the machine: a
// default that is exactly the host name is left out of the
// "(default ...)" note and named in the help instead; a path under the home,
// working or temporary directory is written with $HOME, $PWD or $TMPDIR.
func stableDefault(f *pflag.Flag, machine []machineValue) {
	for _, m := range machine {
		switch {
		case f.DefValue == m.value && m.stable == "":
			f.DefValue = ""
			f.Usage += " (default: " + m.what + ")"
			return
		case m.stable != "" && strings.Contains(f.DefValue, m.value):
			f.DefValue = strings.ReplaceAll(f.DefValue, m.value, m.stable)
		}
	}
}

// readMarkdown reads the .md files of dir by name; a missing dir is empty.
func readMarkdown(t *testing.T, dir string) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(p)] = string(b)
	}
	return files
}

// writeCLIReference replaces docs/cli with files, removing pages of
// commands that are gone.
func writeCLIReference(t *testing.T, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(cliDocs, 0o755); err != nil {
		t.Fatal(err)
	}
	for name := range readMarkdown(t, cliDocs) {
		if _, ok := files[name]; !ok {
			if err := os.Remove(filepath.Join(cliDocs, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(cliDocs, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("rewrote %d files in docs/cli; review the diff", len(files))
}
