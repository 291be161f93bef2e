package manifest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// recordRules passes every value and records each issue as "kind at line".
type recordRules struct{ issues []string }

func (r *recordRules) Check(*yaml.Node, reflect.Type, Path) (ok, handled bool) { return false, false }
func (r *recordRules) Scalar(n *yaml.Node, t reflect.Type, _ Path) bool {
	return n.Decode(reflect.New(t).Interface()) == nil
}

func (r *recordRules) Report(is Issue) {
	r.issues = append(r.issues, fmt.Sprintf("%d %s:%d", is.Kind, is.At, is.Node.Line))
}

type schemaDoc struct {
	Name  string `yaml:"name"`
	Ports []int  `yaml:"ports"`
	Inner struct {
		On bool `yaml:"on"`
	} `yaml:"inner"`
}

func TestCheckSchemaOptions(t *testing.T) {
	const doc = "name: x\nglobal: 1\nports: [1, a, ~, 3]\ninner: {on: true, on: false}\nnme: y\n"
	tests := []struct {
		name   string
		opts   []SchemaOption
		issues []string
		pruned []string
		kept   []string // paths of kept keys and entries, as dotted parts
		yaml   string   // the tree after the check
	}{
		{
			name:   "defaults: a bad entry fails its list, nulls pass",
			issues: []string{fmt.Sprintf("%d global:2", UnknownKey), fmt.Sprintf("%d inner.on:4", RepeatedKey), fmt.Sprintf("%d nme:5", UnknownKey)},
			pruned: []string{"global", "ports", "nme"},
			kept:   []string{"name", "ports.0", "ports.2", "ports.3", "inner.on", "inner"},
			yaml:   "name: x\ninner: {on: true}\n",
		},
		{
			name:   "null unset, bad entries dropped alone, a key ignored",
			opts:   []SchemaOption{NullsUnset(), DropBadEntries(), IgnoreKeys("global")},
			issues: []string{fmt.Sprintf("%d ports:3", EmptyEntry), fmt.Sprintf("%d inner.on:4", RepeatedKey), fmt.Sprintf("%d nme:5", UnknownKey)},
			pruned: []string{"ports", "nme"},
			kept:   []string{"name", "ports.0", "ports.1", "ports", "inner.on", "inner"},
			yaml:   "name: x\nports: [1, 3]\ninner: {on: true}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var root yaml.Node
			if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
				t.Fatal(err)
			}
			r := &recordRules{}
			ok, checked := CheckSchema(root.Content[0], reflect.TypeFor[schemaDoc](), r, tt.opts...)
			if !ok {
				t.Error("the top-level mapping failed")
			}
			if !slices.Equal(r.issues, tt.issues) {
				t.Errorf("issues %q, want %q", r.issues, tt.issues)
			}
			dotted := func(p Path) string { return strings.Join(p.Parts(), ".") }
			var pruned, kept []string
			for _, p := range checked.Pruned {
				pruned = append(pruned, dotted(p))
			}
			for _, k := range checked.Kept {
				kept = append(kept, dotted(k.At))
			}
			if !slices.Equal(pruned, tt.pruned) {
				t.Errorf("pruned %q, want %q", pruned, tt.pruned)
			}
			if !slices.Equal(kept, tt.kept) {
				t.Errorf("kept %q, want %q", kept, tt.kept)
			}
			var d schemaDoc
			if err := root.Decode(&d); err != nil {
				t.Fatalf("decoding the checked tree: %v", err)
			}
			out, err := yaml.Marshal(root.Content[0])
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.yaml {
				t.Errorf("tree after the check:\n%s\nwant:\n%s", out, tt.yaml)
			}
		})
	}
}

func TestPathForms(t *testing.T) {
	p := Path(nil).key("tests").index(3).key("retries")
	if got := p.String(); got != "tests[3].retries" {
		t.Errorf("String() = %q", got)
	}
	if got := strings.Join(p.Parts(), "."); got != "tests.3.retries" {
		t.Errorf("Parts() = %q", got)
	}
	if got := strings.Join(p.Keys(), "."); got != "tests.retries" {
		t.Errorf("Keys() = %q", got)
	}
}
