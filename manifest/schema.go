package manifest

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Path locates a value in a YAML tree: the keys and list positions from
// the top.
type Path []PathStep

// PathStep is a mapping key, or a list position when Index >= 0.
type PathStep struct {
	Key   string
	Index int
}

func (p Path) key(k string) Path { return append(p[:len(p):len(p)], PathStep{Key: k, Index: -1}) }
func (p Path) index(i int) Path  { return append(p[:len(p):len(p)], PathStep{Index: i}) }

// String writes p as manifest messages do: "requires.DB", "tests[3]".
func (p Path) String() string {
	var b strings.Builder
	for _, s := range p {
		switch {
		case s.Index >= 0:
			fmt.Fprintf(&b, "[%d]", s.Index)
		case b.Len() > 0:
			b.WriteString("." + s.Key)
		default:
			b.WriteString(s.Key)
		}
	}
	return b.String()
}

// Parts returns the keys and positions (in decimal) of p.
func (p Path) Parts() []string {
	out := make([]string, len(p))
	for i, s := range p {
		out[i] = s.Key
		if s.Index >= 0 {
			out[i] = strconv.Itoa(s.Index)
		}
	}
	return out
}

// Keys returns the keys of p without the list positions.
func (p Path) Keys() []string {
	var out []string
	for _, s := range p {
		if s.Index < 0 {
			out = append(out, s.Key)
		}
	}
	return out
}

// IssueKind is what is wrong with the shape of a value.
type IssueKind int

// The issues CheckSchema finds itself; the rules find the others.
const (
	NotMapping  IssueKind = iota // a struct's or a map's value is no mapping
	NotList                      // a slice's value is no list
	NotScalar                    // a basic type's value is no single value
	UnknownKey                   // a key that is not a field of the struct
	RepeatedKey                  // a key given twice in one mapping
	EmptyEntry                   // a null list entry, under NullsUnset
)

// Issue is one problem of shape; the rules turn it into their message.
type Issue struct {
	Kind IssueKind
	// Node is the value, or the key for UnknownKey and RepeatedKey.
	Node *yaml.Node
	// At is where the value is; for an EmptyEntry, the list.
	At Path
	// Type is the type the value would decode into.
	Type reflect.Type
	// Fields are the struct's keys in field order, for UnknownKey.
	Fields []string
	// FirstLine is where a RepeatedKey first stands.
	FirstLine int
}

// SchemaRules are what differs between the YAML files patchbay reads: the
// messages, and the types and values with rules of their own.
type SchemaRules interface {
	// Check is asked first about every value but null, pointers
	// dereferenced; handled says it decided, ok whether the value passes.
	Check(n *yaml.Node, t reflect.Type, at Path) (ok, handled bool)
	// Scalar checks a single value for a field of basic type t.
	Scalar(n *yaml.Node, t reflect.Type, at Path) bool
	// Report is told each problem of shape.
	Report(Issue)
}

// Checked is what a schema check kept and dropped.
type Checked struct {
	// Pruned are the values dropped for a problem, and under DropBadEntries
	// each list that lost an entry.
	Pruned []Path
	// Kept are the keys and list entries that passed, each with its line
	// (without DropBadEntries, even those of a list that failed).
	Kept []Placed
}

// Placed is a value kept, and the line of its key or list entry.
type Placed struct {
	At   Path
	Line int
}

// SchemaOption changes how CheckSchema treats nulls, lists and keys.
type SchemaOption func(*schemaWalk)

// NullsUnset leaves null values out of the tree, so that defaults set
// before decoding hold, and reports a null list entry as EmptyEntry.
// Without it a null passes and decodes as the zero value.
func NullsUnset() SchemaOption { return func(w *schemaWalk) { w.nullsUnset = true } }

// DropBadEntries drops a list entry that fails alone; without it the whole
// list fails with it.
func DropBadEntries() SchemaOption { return func(w *schemaWalk) { w.dropEntries = true } }

// IgnoreKeys skips the top-level keys named, which someone else reads.
func IgnoreKeys(keys ...string) SchemaOption {
	return func(w *schemaWalk) { w.ignore = append(w.ignore, keys...) }
}

// CheckSchema compares the node tree n with the Go type t it will decode
// into: every unknown key, repeated key and wrongly typed value goes to
// the rules, and is pruned from the tree, so that decoding afterwards
// cannot fail and validation can go on with the rest. A user sees all
// problems at once, without follow-on noise. ok is false when n itself
// fails.
func CheckSchema(n *yaml.Node, t reflect.Type, rules SchemaRules, opts ...SchemaOption) (ok bool, c Checked) {
	w := &schemaWalk{rules: rules}
	for _, o := range opts {
		o(w)
	}
	ok = w.check(n, t, nil)
	return ok, w.Checked
}

type schemaWalk struct {
	rules       SchemaRules
	nullsUnset  bool
	dropEntries bool
	ignore      []string
	Checked
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// check reports whether n can decode into t; the caller prunes it if not.
func (w *schemaWalk) check(n *yaml.Node, t reflect.Type, at Path) bool {
	if isNull(n) {
		return true // unset: the zero value, defaults come later
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if ok, handled := w.rules.Check(n, t, at); handled {
		return ok
	}
	issue := Issue{Node: n, At: at, Type: t}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			issue.Kind = NotMapping
			break
		}
		fields, names := yamlFields(t)
		w.entries(n, at, func(k *yaml.Node) (reflect.Type, bool) {
			f, ok := fields[k.Value]
			if !ok {
				w.rules.Report(Issue{Kind: UnknownKey, Node: k, At: at.key(k.Value), Type: t, Fields: names})
			}
			return f, ok
		})
		return true
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			issue.Kind = NotMapping
			break
		}
		w.entries(n, at, func(*yaml.Node) (reflect.Type, bool) { return t.Elem(), true })
		return true
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			issue.Kind = NotList
			break
		}
		return w.list(n, t.Elem(), at)
	default:
		if n.Kind == yaml.ScalarNode {
			return w.rules.Scalar(n, t, at)
		}
		issue.Kind = NotScalar
	}
	w.rules.Report(issue)
	return false
}

// list checks each entry of list n; see DropBadEntries.
func (w *schemaWalk) list(n *yaml.Node, elem reflect.Type, at Path) bool {
	ok := true
	kept := n.Content[:0:0]
	for _, e := range n.Content {
		p := at.index(len(kept))
		switch {
		case w.nullsUnset && isNull(e):
			w.rules.Report(Issue{Kind: EmptyEntry, Node: e, At: at, Type: elem})
		case w.check(e, elem, p):
			w.Kept = append(w.Kept, Placed{At: p, Line: e.Line})
			kept = append(kept, e)
		case !w.dropEntries:
			ok = false
			kept = append(kept, e)
		}
	}
	if len(kept) < len(n.Content) {
		w.Pruned = append(w.Pruned, at) // an empty list now is no mistake of its own
	}
	n.Content = kept
	return ok
}

// entries checks each entry of mapping n with the type fieldType gives its
// key, and prunes repeated keys, unknown fields and values that fail.
func (w *schemaWalk) entries(n *yaml.Node, at Path, fieldType func(k *yaml.Node) (reflect.Type, bool)) {
	seen := map[string]int{}
	kept := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := at.key(k.Value)
		if line, dup := seen[k.Value]; dup {
			w.rules.Report(Issue{Kind: RepeatedKey, Node: k, At: p, FirstLine: line})
			continue
		}
		seen[k.Value] = k.Line
		if len(at) == 0 && slices.Contains(w.ignore, k.Value) {
			continue // read by someone else
		}
		t, ok := fieldType(k)
		switch {
		case !ok:
			w.Pruned = append(w.Pruned, p)
		case w.nullsUnset && isNull(v):
			// unset: the default holds
		case !w.check(v, t, p):
			w.Pruned = append(w.Pruned, p)
		default:
			w.Kept = append(w.Kept, Placed{At: p, Line: k.Line})
			kept = append(kept, k, v)
		}
	}
	n.Content = kept
}

// yamlFields maps each yaml tag name of struct t to its field type, and
// lists the names in the order of the fields.
func yamlFields(t reflect.Type) (fields map[string]reflect.Type, names []string) {
	fields = map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
			names = append(names, name)
		}
	}
	return fields, names
}

// manifestRules are the schema rules of manifests and datastores files.
type manifestRules struct {
	file  string
	probs Problems
}

var (
	durationType    = reflect.TypeFor[Duration]()
	requirementType = reflect.TypeFor[Requirement]()
)

// checkManifestSchema checks root against t and returns the problems and
// the paths pruned.
func checkManifestSchema(file string, root *yaml.Node, t reflect.Type) (Problems, map[string]bool) {
	r := &manifestRules{file: file}
	_, checked := CheckSchema(root, t, r)
	pruned := map[string]bool{}
	for _, p := range checked.Pruned {
		pruned[p.String()] = true
	}
	return r.probs, pruned
}

// report records a problem and returns false, for "check failed".
func (r *manifestRules) report(n *yaml.Node, format string, args ...any) bool {
	r.probs = append(r.probs, Problem{File: r.file, Line: n.Line, Column: n.Column, Message: fmt.Sprintf(format, args...)})
	return false
}

func (r *manifestRules) Check(n *yaml.Node, t reflect.Type, at Path) (ok, handled bool) {
	switch {
	case t == durationType:
		d, err := time.ParseDuration(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil || d < 0 {
			return r.report(n, "%s: %s is not a duration; write it like \"30s\" or \"10m\"", at, NodeKind(n)), true
		}
		return true, true
	case t == requirementType && n.Kind == yaml.ScalarNode:
		return true, true // the short form, a template: validated with the manifest
	}
	return false, false
}

func (r *manifestRules) Scalar(n *yaml.Node, t reflect.Type, at Path) bool {
	switch {
	case t.Kind() == reflect.Bool && n.Tag != "!!bool":
		return r.report(n, "%s: %s is not true or false", at, NodeKind(n))
	case t.Kind() == reflect.Int && n.Tag != "!!int":
		return r.report(n, "%s: %s is not a whole number", at, NodeKind(n))
	}
	return true
}

func (r *manifestRules) Report(is Issue) {
	switch is.Kind {
	case NotMapping:
		what := "a mapping"
		if is.Type.Kind() == reflect.Struct {
			what = "a mapping of fields"
		}
		r.report(is.Node, "%s: expected %s, found %s", is.At, what, NodeKind(is.Node))
	case NotList:
		r.report(is.Node, "%s: expected a list, found %s", is.At, NodeKind(is.Node))
	case NotScalar:
		r.report(is.Node, "%s: expected a single value, found %s", is.At, NodeKind(is.Node))
	case UnknownKey:
		k := is.Node.Value
		r.report(is.Node, "unknown field %q%s%s", k, in(is.At[:len(is.At)-1]), suggest(k, slices.Sorted(slices.Values(is.Fields))))
	case RepeatedKey:
		r.report(is.Node, "%s%q repeats the key of line %d; keep one", prefixed(is.At[:len(is.At)-1]), is.Node.Value, is.FirstLine)
	}
}

func in(path Path) string {
	if len(path) == 0 {
		return ""
	}
	return " in " + path.String()
}

func prefixed(path Path) string {
	if len(path) == 0 {
		return ""
	}
	return path.String() + ": "
}
