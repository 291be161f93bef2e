package plan

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/model"
	"github.com/patchbay/patchbay/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// checkGolden compares got with testdata/NAME.golden; -update rewrites it.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v; run go test ./plan -run %s -update", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("markdown differs from %s (go test ./plan -run %s -update rewrites it; review the diff)\ngot:\n%s", file, t.Name(), got)
	}
}

func markdown(t *testing.T, p *Plan, limit int) string {
	t.Helper()
	var b bytes.Buffer
	if err := p.WriteMarkdown(&b, limit); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestMarkdownGolden: the pull-request comment of a publish (bindings,
// diffs, a rollout group, a masked datastore value), of an impact that
// leaves a route empty, and of no change.
func TestMarkdownGolden(t *testing.T) {
	snap := fixture(t)
	www := strings.Replace(wwwDoc, "requires: {", `requires: {DB: "{DB_URL}", `, 1)
	published := compute(t, snap, Publish(snap, parse(t, www), []binding.Datastore{{Federation: "default", Key: "DB_URL", Value: "postgres://app:pw@db/app"}}))
	impact, err := Impact(context.Background(), snap, func(in binding.Instance) bool { return in.Node == "n1" || in.Node == "n2" }, WithRenderer(templates.NewRenderer()))
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*Plan{"publish": published, "impact": impact, "nochange": compute(t, snap, snap)} {
		t.Run(name, func(t *testing.T) {
			got := markdown(t, p, 0)
			checkGolden(t, "markdown-"+name, got)
			if strings.Contains(got, "pw@") {
				t.Errorf("the comment shows a URL's password:\n%s", got)
			}
		})
	}
	if got := markdown(t, impact, 0); !strings.Contains(got, "- **route `WEB_URL` of lb") {
		t.Errorf("the emptied route is not in bold:\n%s", got)
	}
}

// TestMarkdownBounded: a plan larger than a comment is cut to the limit,
// with a note saying what was left out.
func TestMarkdownBounded(t *testing.T) {
	p := &Plan{Bindings: []BindingChange{{Federation: "default", Service: "www", Change: "changed"}}}
	for i := range 500 {
		diff := strings.Repeat(fmt.Sprintf("+line %d of a long file\n", i), 20)
		p.Nodes = append(p.Nodes, NodeChange{Node: fmt.Sprintf("node-%03d", i), Services: []model.ServiceRun{{Service: "www", Result: model.ResultOK, Templates: []model.TemplateRun{{Name: "env", Destination: "/etc/www.env", Changed: true, Diff: diff}}}}})
	}
	for _, limit := range []int{0, 10_000} {
		got := markdown(t, p, limit)
		want := limit
		if limit == 0 {
			want = MaxComment
		}
		if len(got) > want {
			t.Errorf("limit %d: %d characters", limit, len(got))
		}
		if !strings.Contains(got, "nodes not shown") || !strings.Contains(got, "node-000") || strings.Contains(got, "node-499") {
			t.Errorf("limit %d: no truncation note, or the wrong nodes:\n%s", limit, got[len(got)-300:])
		}
		if strings.Count(got, "<details>") != strings.Count(got, "</details>") {
			t.Errorf("limit %d: a section cut in the middle", limit)
		}
	}
	if got := markdown(t, &Plan{Nodes: p.Nodes[:2], Bindings: p.Bindings}, 0); strings.Contains(got, "not shown") {
		t.Errorf("a small plan is truncated:\n%s", got)
	}
}

func TestCodeFence(t *testing.T) {
	for in, want := range map[string]string{"plain": "```", "a ``` b": "````", "`x`": "```"} {
		if got := codeFence(in); got != want {
			t.Errorf("codeFence(%q) = %q, want %q", in, got, want)
		}
	}
}
