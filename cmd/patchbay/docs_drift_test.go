package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The docs-drift tests hold README.md and docs/ to the code: every flag,
// metric, listener.yaml key and exit code the prose names exists, every one
// that exists is explained somewhere in the prose (docs/cli, generated, does
// not count: it lists every flag by construction), and every link resolves.
// Each failure says what to add and where.

const repoRoot = "../.."

// externalFlags are flags of other programs that the docs show in commands
// (curl, docker compose, systemctl); they are no flags of patchbay's.
var externalFlags = map[string]string{
	"--unix-socket": "curl",
	"--build":       "docker compose up",
	"--now":         "systemctl enable",
}

// proseDocs reads README.md and every docs/**/*.md but the generated
// docs/cli, by path relative to the repository's root.
func proseDocs(t *testing.T) map[string]string {
	t.Helper()
	docs := map[string]string{}
	add := func(rel string) {
		b, err := os.ReadFile(filepath.Join(repoRoot, rel))
		if err != nil {
			t.Fatal(err)
		}
		docs[rel] = string(b)
	}
	add("README.md")
	err := filepath.WalkDir(filepath.Join(repoRoot, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		switch {
		case d.IsDir() && rel == filepath.Join("docs", "cli"):
			return filepath.SkipDir
		case !d.IsDir() && strings.HasSuffix(p, ".md"):
			add(filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// cmdFlag is one flag of one command, as the drift check sees it.
type cmdFlag struct {
	command string // "patchbay publish"
	name    string // "wait"
	hidden  bool   // a deprecated alias or an internal flag: need not be documented
}

// commandFlags lists the flags of every command, persistent ones once, at
// the command that declares them.
func commandFlags() []cmdFlag {
	root := newRootCmd(io.Discard, io.Discard)
	root.InitDefaultCompletionCmd()
	var out []cmdFlag
	visitCommands(root, func(c *cobra.Command) {
		add := func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			out = append(out, cmdFlag{command: c.CommandPath(), name: f.Name, hidden: f.Hidden || f.Deprecated != "" || c.Hidden})
		}
		c.LocalNonPersistentFlags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
	})
	return out
}

var flagMention = regexp.MustCompile(`(^|[^\w-])(--[a-z0-9][a-z0-9-]*)`)

// flagDrift compares the flags docs name with those commands declare.
func flagDrift(docs map[string]string, flags []cmdFlag) []string {
	declared := map[string]bool{}
	for _, f := range flags {
		declared["--"+f.name] = true
	}
	var problems []string
	for _, path := range slices.Sorted(mapKeys(docs)) {
		for i, line := range strings.Split(docs[path], "\n") {
			for _, m := range flagMention.FindAllStringSubmatch(line, -1) {
				name := m[2]
				if declared[name] || externalFlags[name] != "" {
					continue
				}
				problems = append(problems, fmt.Sprintf("%s:%d: names %s, which no patchbay command has: fix the text, or, if it is another program's flag, add it to externalFlags in cmd/patchbay/docs_drift_test.go", path, i+1, name))
			}
		}
	}
	for _, f := range flags {
		if f.hidden || mentions(docs, "--"+f.name) {
			continue
		}
		page := pageOf(f.command)
		problems = append(problems, fmt.Sprintf("%s --%s is documented only in docs/cli: say what it does and when to use it in %s (the page that explains `%s`), e.g. \"`%s --%s …`: …\"; then run `go test ./cmd/patchbay -run TestCLIReference -update`", f.command, f.name, page, f.command, f.command, f.name))
	}
	return problems
}

// mentions reports whether some doc names flag as a whole word.
func mentions(docs map[string]string, flag string) bool {
	re := regexp.MustCompile(`(^|[^\w-])` + regexp.QuoteMeta(flag) + `($|[^\w-])`)
	for _, text := range docs {
		if re.MatchString(text) {
			return true
		}
	}
	return false
}

// commandPages is the docs page that explains each command (by its first
// word after patchbay): where a new flag of it is to be explained.
var commandPages = map[string]string{
	"patchbay":   "docs/settings.md",
	"completion": "docs/settings.md",
	"console":    "docs/console.md",
	"datastore":  "docs/manifest.md",
	"dev":        "README.md",
	"explain":    "docs/resolution.md",
	"graph":      "docs/resolution.md",
	"impact":     "docs/plan.md",
	"keygen":     "docs/security.md",
	"listen":     "docs/listener.md",
	"order":      "docs/resolution.md",
	"pause":      "docs/operations.md",
	"plan":       "docs/plan.md",
	"provision":  "docs/operations.md",
	"publish":    "docs/manifest.md",
	"register":   "docs/operations.md",
	"render":     "docs/templates.md",
	"resolve":    "docs/resolution.md",
	"resolver":   "docs/resolution.md",
	"resume":     "docs/operations.md",
	"rollout":    "docs/operations.md",
	"status":     "docs/listener.md",
	"unpublish":  "docs/manifest.md",
	"validate":   "docs/manifest.md",
	"version":    "docs/settings.md",
	"wait":       "docs/change-tracking.md",
}

// commandWord is the first word of a command path after "patchbay".
func commandWord(path string) string {
	f := strings.Fields(path)
	if len(f) < 2 {
		return "patchbay"
	}
	return f[1]
}

// pageOf is the page that explains command, or a request to name one.
func pageOf(command string) string {
	if p, ok := commandPages[commandWord(command)]; ok {
		return p
	}
	return fmt.Sprintf("the docs page that explains it (and add %q: \"docs/PAGE.md\" to commandPages in cmd/patchbay/docs_drift_test.go)", commandWord(command))
}

// pageDrift checks that every command has a page, and that its page names it.
func pageDrift(docs map[string]string, flags []cmdFlag) []string {
	var problems []string
	seen := map[string]bool{}
	for _, f := range flags {
		w := commandWord(f.command)
		if seen[w] || f.hidden {
			continue
		}
		seen[w] = true
		page, ok := commandPages[w]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("command patchbay %s has no docs page: explain it in a page under docs/ (a new docs/%s.md, linked from README's \"Where next\", or the page of its subject) and add %q: \"docs/PAGE.md\" to commandPages in cmd/patchbay/docs_drift_test.go", w, w, w))
		case docs[page] == "":
			problems = append(problems, fmt.Sprintf("commandPages sends patchbay %s to %s, which does not exist", w, page))
		case w != "patchbay" && !strings.Contains(docs[page], w):
			problems = append(problems, fmt.Sprintf("%s, the page of patchbay %s (commandPages), never names it", page, w))
		}
	}
	return problems
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestDocsFlags(t *testing.T) {
	docs, flags := proseDocs(t), commandFlags()
	for _, p := range append(pageDrift(docs, flags), flagDrift(docs, flags)...) {
		t.Error(p)
	}
}

var metricMention = regexp.MustCompile(`\bpatchbay_[a-z_]+[a-z]\b`)

// definedMetrics finds the Prometheus metrics the module's code declares:
// every `Name: "patchbay_…"` of a composite literal outside tests.
func definedMetrics(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "tools" || strings.HasPrefix(d.Name(), ".")) && p != repoRoot {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			kv, ok := n.(*ast.KeyValueExpr)
			if !ok {
				return true
			}
			if id, ok := kv.Key.(*ast.Ident); ok && id.Name == "Name" {
				if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, _ := strconv.Unquote(lit.Value); metricMention.MatchString(s) && metricMention.FindString(s) == s {
						rel, _ := filepath.Rel(repoRoot, p)
						out[s] = filepath.ToSlash(rel)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// metricDrift compares the metrics docs name with those the code declares.
// A histogram's _bucket, _sum and _count series count as the histogram.
func metricDrift(docs map[string]string, defined map[string]string) []string {
	var problems []string
	for _, path := range slices.Sorted(mapKeys(docs)) {
		for i, line := range strings.Split(docs[path], "\n") {
			for _, m := range metricMention.FindAllString(line, -1) {
				base := m
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(m, suffix); ok && defined[b] != "" {
						base = b
					}
				}
				if defined[base] == "" && !isMetricLabelOrKey(m) {
					problems = append(problems, fmt.Sprintf("%s:%d: names metric %s, which no code declares: fix the text (the metrics are the Name: \"patchbay_…\" of listener/metrics.go and resolverd/metrics.go)", path, i+1, m))
				}
			}
		}
	}
	for _, name := range slices.Sorted(mapKeys(defined)) {
		if !mentions(docs, name) {
			page := "docs/listener.md (\"Control endpoint, status and metrics\")"
			if strings.HasPrefix(name, "patchbay_resolver_") {
				page = "docs/resolution.md (\"Resolver metrics\")"
			}
			problems = append(problems, fmt.Sprintf("metric %s (%s) is documented nowhere: name it and say what it counts in %s", name, defined[name], page))
		}
	}
	return problems
}

// isMetricLabelOrKey tells the patchbay_ names that are no metrics: Consul
// service meta keys the registry writes.
func isMetricLabelOrKey(s string) bool {
	return slices.Contains([]string{"patchbay_federation", "patchbay_node", "patchbay_region", "patchbay_holder"}, s)
}

func TestDocsMetrics(t *testing.T) {
	defined := definedMetrics(t)
	if len(defined) < 10 {
		t.Fatalf("found only %d metrics in the code (%v): the scan no longer sees how metrics are declared", len(defined), defined)
	}
	for _, p := range metricDrift(proseDocs(t), defined) {
		t.Error(p)
	}
}
