package manifest

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// schemaChecker compares a node tree with the Go type it will decode into
// and records every unknown field, repeated key and wrongly typed value. It
// prunes each bad entry from the tree and remembers its path, so that
// decoding afterwards cannot fail and validation can go on with the rest:
// a user sees all problems at once, without follow-on noise.
type schemaChecker struct {
	file   string
	probs  Problems
	pruned map[string]bool // paths removed from the tree
}

var (
	durationType    = reflect.TypeFor[Duration]()
	requirementType = reflect.TypeFor[Requirement]()
)

// report records a problem and returns false, for "check failed".
func (c *schemaChecker) report(n *yaml.Node, format string, args ...any) bool {
	c.probs = append(c.probs, Problem{File: c.file, Line: n.Line, Column: n.Column, Message: fmt.Sprintf(format, args...)})
	return false
}

// check reports whether n can decode into t; the caller prunes it if not.
func (c *schemaChecker) check(n *yaml.Node, t reflect.Type, path string) bool {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return true // unset: the zero value, defaults come later
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return c.checkDuration(n, path)
	case t == requirementType && n.Kind == yaml.ScalarNode:
		return true // the short form, a template: validated with the manifest
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return c.report(n, "%s: expected a mapping of fields, found %s", path, NodeKind(n))
		}
		fields, _ := YAMLFields(t)
		c.entries(n, path, func(k *yaml.Node) (reflect.Type, bool) {
			f, ok := fields[k.Value]
			if !ok {
				c.report(k, "unknown field %q%s%s", k.Value, in(path), suggest(k.Value, slices.Sorted(maps.Keys(fields))))
			}
			return f, ok
		})
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return c.report(n, "%s: expected a mapping, found %s", path, NodeKind(n))
		}
		c.entries(n, path, func(*yaml.Node) (reflect.Type, bool) { return t.Elem(), true })
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return c.report(n, "%s: expected a list, found %s", path, NodeKind(n))
		}
		ok := true
		for i, e := range n.Content {
			ok = c.check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)) && ok
		}
		return ok
	default:
		return c.checkScalar(n, t.Kind(), path)
	}
	return true
}

func (c *schemaChecker) checkScalar(n *yaml.Node, kind reflect.Kind, path string) bool {
	switch {
	case n.Kind != yaml.ScalarNode:
		return c.report(n, "%s: expected a single value, found %s", path, NodeKind(n))
	case kind == reflect.Bool && n.Tag != "!!bool":
		return c.report(n, "%s: %s is not true or false", path, NodeKind(n))
	case kind == reflect.Int && n.Tag != "!!int":
		return c.report(n, "%s: %s is not a whole number", path, NodeKind(n))
	}
	return true
}

func (c *schemaChecker) checkDuration(n *yaml.Node, path string) bool {
	d, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || d < 0 {
		return c.report(n, "%s: %s is not a duration; write it like \"30s\" or \"10m\"", path, NodeKind(n))
	}
	return true
}

// entries checks each entry of mapping n with the type fieldType gives its
// key, and prunes repeated keys, unknown fields and values that fail.
func (c *schemaChecker) entries(n *yaml.Node, path string, fieldType func(k *yaml.Node) (reflect.Type, bool)) {
	seen := map[string]int{}
	kept := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			c.report(k, "%s%q repeats the key of line %d; keep one", prefixed(path), k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		if t, ok := fieldType(k); !ok || !c.check(v, t, p) {
			if c.pruned == nil {
				c.pruned = map[string]bool{}
			}
			c.pruned[p] = true
			continue
		}
		kept = append(kept, k, v)
	}
	n.Content = kept
}

// YAMLFields maps each yaml tag name of struct t to its field type, and
// lists the names in the order of the fields, for every schema check of a
// YAML file patchbay reads (manifests here, listener.yaml in listener).
func YAMLFields(t reflect.Type) (fields map[string]reflect.Type, names []string) {
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

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func in(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}

func prefixed(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}
