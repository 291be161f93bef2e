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
		page := pageOf(docs, f.command)
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

// pageOf is the docs page that names command most often: where a new flag
// of it belongs.
func pageOf(docs map[string]string, command string) string {
	name := strings.TrimPrefix(command, "patchbay ")
	best, most := "docs/settings.md", 0
	for _, path := range slices.Sorted(mapKeys(docs)) {
		if path == "README.md" {
			continue // the front page stays short
		}
		n := strings.Count(docs[path], "patchbay "+name) + strings.Count(docs[path], "`"+name)
		if n > most {
			best, most = path, n
		}
	}
	return best
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
	for _, p := range flagDrift(proseDocs(t), commandFlags()) {
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
					problems = append(problems, fmt.Sprintf("%s:%d: names metric %s, which no code declares: fix the text (the metrics are the Name: \"patchbay_…\" of listener/metrics.go and resolver/daemon/metrics.go)", path, i+1, m))
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
