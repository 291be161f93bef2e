package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/patchbay/patchbay/listener"
)

// allDocs is proseDocs plus the generated docs/cli, whose links are
// checked too.
func allDocs(t *testing.T) map[string]string {
	t.Helper()
	docs := proseDocs(t)
	for name, text := range readMarkdown(t, cliDocs) {
		docs["docs/cli/"+name] = text
	}
	return docs
}

var (
	inlineLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refLink    = regexp.MustCompile(`(?m)^\s*\[[^\]]+\]:\s*(\S+)`)
	codeSpan   = regexp.MustCompile("`[^`]*`")
	atxHeading = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	htmlAnchor = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
)

// proseLines yields each line of a Markdown text outside fenced code, with
// its number.
func proseLines(text string, fn func(n int, line string)) {
	fence := ""
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		switch {
		case fence != "" && strings.HasPrefix(trimmed, fence):
			fence = ""
		case fence != "":
		case strings.HasPrefix(trimmed, "```"), strings.HasPrefix(trimmed, "~~~"):
			fence = trimmed[:3]
		default:
			fn(i+1, line)
		}
	}
}

// anchors are the fragment names a GitHub-rendered page offers: one per
// heading (lower case, punctuation dropped, spaces as hyphens, repeats
// numbered -1, -2, ...) and each HTML anchor.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	proseLines(text, func(_ int, line string) {
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
		m := atxHeading.FindStringSubmatch(line)
		if m == nil {
			return
		}
		s := slugify(m[1])
		if n := seen[s]; n > 0 {
			out[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	})
	return out
}

func slugify(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// linkDrift checks that every relative link of docs (paths relative to the
// repository root) names a file that exists, and a heading anchor of it
// where one is given. exists reports whether a repository path exists.
func linkDrift(docs map[string]string, exists func(string) bool) []string {
	var problems []string
	for _, file := range slices.Sorted(mapKeys(docs)) {
		proseLines(docs[file], func(n int, line string) {
			line = codeSpan.ReplaceAllString(line, "")
			var targets []string
			for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
				targets = append(targets, m[1])
			}
			for _, m := range refLink.FindAllStringSubmatch(line, -1) {
				targets = append(targets, m[1])
			}
			for _, target := range targets {
				if p := checkLink(docs, exists, file, target); p != "" {
					problems = append(problems, fmt.Sprintf("%s:%d: link %s: %s", file, n, target, p))
				}
			}
		})
	}
	return problems
}

// checkLink says what is wrong with one link of file, or "".
func checkLink(docs map[string]string, exists func(string) bool, file, target string) string {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return "" // the web is not checked here
	}
	p, frag, _ := strings.Cut(target, "#")
	dest := file
	if p != "" {
		dest = path.Clean(path.Join(path.Dir(file), p))
		if strings.HasPrefix(dest, "../") {
			return "points outside the repository"
		}
		if !exists(dest) {
			return fmt.Sprintf("no file %s: fix the path (relative to %s), or restore the file", dest, path.Dir(file))
		}
	}
	if frag == "" || !strings.HasSuffix(dest, ".md") {
		return ""
	}
	text, ok := docs[dest]
	if !ok {
		return "" // a Markdown file outside the docs (examples/...): anchors unchecked
	}
	if !anchors(text)[frag] {
		return fmt.Sprintf("%s has no heading for #%s: link to one of its headings (the anchor is the heading in lower case, spaces as hyphens)", dest, frag)
	}
	return ""
}

// orphanDrift names the pages of docs/ that no other page links to: a
// reader starting at README.md could never find them. The generated
// command pages are reached through docs/cli/patchbay.md.
func orphanDrift(docs map[string]string) []string {
	linked := map[string]bool{}
	for _, file := range slices.Sorted(mapKeys(docs)) {
		proseLines(docs[file], func(_ int, line string) {
			for _, m := range inlineLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
				p, _, _ := strings.Cut(m[1], "#")
				if dest := path.Clean(path.Join(path.Dir(file), p)); p != "" && dest != file {
					linked[dest] = true
				}
			}
		})
	}
	var problems []string
	for _, file := range slices.Sorted(mapKeys(docs)) {
		generated := strings.HasPrefix(file, "docs/cli/") && file != "docs/cli/patchbay.md"
		if file != "README.md" && !generated && !linked[file] {
			problems = append(problems, fmt.Sprintf("%s is linked from no page: link it from README.md's \"Where next\" table (or from the page of its subject)", file))
		}
	}
	return problems
}

func TestDocsLinks(t *testing.T) {
	docs := allDocs(t)
	exists := func(p string) bool {
		_, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(p)))
		return err == nil
	}
	for _, p := range append(linkDrift(docs, exists), orphanDrift(docs)...) {
		t.Error(p)
	}
}

// listenerKeys are listener.yaml's keys as the reference writes them
// (queue.quiet, services[].port), from listener.Config's yaml tags.
func listenerKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		keys = append(keys, key)
		ft := t.Field(i).Type
		switch {
		case ft.Kind() == reflect.Struct && ft.NumField() > 0 && ft.Field(0).Tag.Get("yaml") != "":
			keys = append(keys, listenerKeys(ft, key+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, listenerKeys(ft.Elem(), key+"[].")...)
		}
	}
	return keys
}

// keyRow is a row of the listener.yaml reference's key table.
var keyRow = regexp.MustCompile("(?m)^\\| `([a-z_.\\[\\]]+)` \\|")

// listenerKeyDrift compares the reference's key table with the keys of
// listener.yaml: a key is documented by its own row, an ancestor's
// (services[].provision covers its command and timeout) or, for a
// section, its keys' rows.
func listenerKeyDrift(reference string, keys []string) []string {
	var rows []string
	for _, m := range keyRow.FindAllStringSubmatch(reference, -1) {
		rows = append(rows, m[1])
	}
	var problems []string
	for _, r := range rows {
		if !slices.Contains(keys, r) {
			problems = append(problems, fmt.Sprintf("docs/listener-yaml.md documents key %s, which listener.yaml does not have (its keys are listener.Config's yaml tags): remove or rename the row", r))
		}
	}
	for _, k := range keys {
		covered := slices.ContainsFunc(rows, func(r string) bool {
			return k == r || under(k, r) || under(r, k) // a section (queue) is documented by its keys' rows
		})
		if !covered {
			problems = append(problems, fmt.Sprintf("listener.yaml key %s is not in docs/listener-yaml.md's key table: add a row \"| `%s` | DEFAULT | what it does and its constraints |\"", k, k))
		}
	}
	return problems
}

// under reports whether key k lies beneath key parent.
func under(k, parent string) bool {
	return strings.HasPrefix(k, parent+".") || strings.HasPrefix(k, parent+"[].")
}

func TestDocsListenerKeys(t *testing.T) {
	keys := listenerKeys(reflect.TypeFor[listener.Config](), "")
	if len(keys) < len(listener.ConfigKeys()) {
		t.Fatalf("found %d keys, fewer than listener.ConfigKeys' %d", len(keys), len(listener.ConfigKeys()))
	}
	for _, p := range listenerKeyDrift(proseDocs(t)["docs/listener-yaml.md"], keys) {
		t.Error(p)
	}
}

// exitCodes are the exit* constants of main.go, by value.
func exitCodes(t *testing.T) map[int]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Values) != len(vs.Names) {
			return true
		}
		for i, name := range vs.Names {
			lit, ok := vs.Values[i].(*ast.BasicLit)
			if ok && strings.HasPrefix(name.Name, "exit") && lit.Kind == token.INT {
				v, _ := strconv.Atoi(lit.Value)
				out[v] = name.Name
			}
		}
		return true
	})
	return out
}

var exitRow = regexp.MustCompile(`(?m)^\| (\d+) \|`)

// exitCodeDrift compares the exit code table of docs/settings.md with the
// codes main.go defines.
func exitCodeDrift(settings string, codes map[int]string) []string {
	_, section, ok := strings.Cut(settings, "\n## Exit codes\n")
	if !ok {
		return []string{"docs/settings.md has no \"## Exit codes\" section: restore it, with a row per exit code of cmd/patchbay/main.go"}
	}
	section, _, _ = strings.Cut(section, "\n## ")
	documented := map[int]bool{}
	var problems []string
	for _, m := range exitRow.FindAllStringSubmatch(section, -1) {
		c, _ := strconv.Atoi(m[1])
		documented[c] = true
		if codes[c] == "" {
			problems = append(problems, fmt.Sprintf("docs/settings.md documents exit code %d, which cmd/patchbay/main.go does not define: remove the row", c))
		}
	}
	for _, c := range slices.Sorted(mapKeysInt(codes)) {
		if !documented[c] {
			problems = append(problems, fmt.Sprintf("exit code %d (%s in cmd/patchbay/main.go) is not in docs/settings.md's exit code table: add a row \"| %d | when it happens |\"", c, codes[c], c))
		}
	}
	return problems
}

func mapKeysInt[V any](m map[int]V) func(func(int) bool) {
	return func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestDocsExitCodes(t *testing.T) {
	codes := exitCodes(t)
	if len(codes) < 3 {
		t.Fatalf("found exit codes %v in main.go: the scan no longer sees them", codes)
	}
	for _, p := range exitCodeDrift(proseDocs(t)["docs/settings.md"], codes) {
		t.Error(p)
	}
}

// Each renamed flag's old spelling is in docs/settings.md's table of
// renamed flags, so that a user who still types it finds the new name.
func TestDocsRenamedFlags(t *testing.T) {
	settings := proseDocs(t)["docs/settings.md"]
	for _, cmd := range slices.Sorted(mapKeys(deprecatedFlags)) {
		for old, current := range deprecatedFlags[cmd] {
			row := fmt.Sprintf("| `%s` | `--%s` | `--%s` |", cmd, old, current)
			if !strings.Contains(settings, row) {
				t.Errorf("docs/settings.md's renamed flags lack %s --%s: add the row %q", cmd, old, row)
			}
		}
	}
}

// TestReadmeFirstManifest keeps README's first manifest the example file it
// says it is: a newcomer reads it before anything else, and the example
// changes as features land (via: local did).
func TestReadmeFirstManifest(t *testing.T) {
	const example = "examples/services/app-www/10-app.yaml"
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(repoRoot, example))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "This is\n`"+example+"`")
	if !ok {
		t.Fatalf("README.md no longer introduces %s as its first manifest: update this test", example)
	}
	_, block, _ := strings.Cut(after, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	var want []string // the file without its comment-only lines
	for line := range strings.Lines(string(file)) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			want = append(want, line)
		}
	}
	if block != strings.Join(want, "") {
		t.Errorf("README.md's first manifest differs from %s: copy the file (without its comment-only lines) into README's yaml block", example)
	}
}
