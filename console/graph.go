package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/goccy/go-graphviz"

	"github.com/patchbay/patchbay/resolver"
)

func decodeBinding(data []byte, b *resolver.Binding) error { return json.Unmarshal(data, b) }

// missing is one unresolved requirement, drawn as a red edge to a red
// "no provider" node.
type missing struct{ service, varName, key, reason string }

// unresolvedOf lists the unresolved requirements of fed's services, once
// per (service, var) whatever the number of regions.
func unresolvedOf(res *resolver.Result, fed string) []missing {
	var out []missing
	for _, b := range res.Bindings {
		if b.Federation != fed {
			continue
		}
		for _, u := range b.Unresolved {
			m := missing{b.Service, u.Var, u.Key, u.Reason}
			if !slices.ContainsFunc(out, func(o missing) bool { return o.service == m.service && o.varName == m.varName }) {
				out = append(out, m)
			}
		}
	}
	return out
}

// graphDOT draws one federation: services (public ones with a double
// border, those with an unresolved requirement in red), datastores as
// cylinders, an edge per key bound labelled with the key (dashed to a
// datastore, red on a cycle), and unresolved requirements as red edges to
// a red note.
func graphDOT(g *resolver.Graph, miss []missing) string {
	var b strings.Builder
	b.WriteString("digraph patchbay {\n\trankdir=LR;\n\tbgcolor=transparent;\n\tnode [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=Helvetica, fontsize=11];\n\tedge [fontname=Helvetica, fontsize=9];\n")
	broken := map[string]bool{}
	for _, m := range miss {
		broken[m.service] = true
	}
	for _, n := range g.Nodes() {
		var attrs []string
		switch {
		case n.Datastore != "":
			attrs = append(attrs, "shape=cylinder", "style=filled", "fillcolor=\"#f3f0e6\"", "label="+quote(n.Datastore+"\n(datastore)"))
		case n.Public:
			attrs = append(attrs, "peripheries=2", "fillcolor=\"#e6f0fb\"", "label="+quote(n.Name+"\n(public)"))
		}
		if broken[n.Name] || n.OnCycle {
			attrs = append(attrs, "color=red", "fontcolor=red")
		}
		fmt.Fprintf(&b, "\t%s [%s];\n", quote(n.Name), strings.Join(append(attrs, "id="+quote("node-"+n.Name)), ", "))
	}
	drawn := map[[3]string]bool{}
	for _, e := range g.Edges() {
		k := [3]string{e.From, e.To, e.Key}
		if drawn[k] {
			continue
		}
		drawn[k] = true
		attrs := []string{"label=" + quote(e.Key)}
		if strings.HasPrefix(e.To, "datastore:") {
			attrs = append(attrs, "style=dashed")
		}
		if e.OnCycle {
			attrs = append(attrs, "color=red", "fontcolor=red", "label="+quote(e.Key+" (cycle)"))
		}
		fmt.Fprintf(&b, "\t%s -> %s [%s];\n", quote(e.From), quote(e.To), strings.Join(attrs, ", "))
	}
	for _, m := range miss {
		target := "missing:" + m.key
		fmt.Fprintf(&b, "\t%s [shape=note, color=red, fontcolor=red, label=%s];\n", quote(target), quote(m.key+"\n(unresolved)"))
		fmt.Fprintf(&b, "\t%s -> %s [color=red, fontcolor=red, style=dashed, label=%s, tooltip=%s];\n", quote(m.service), quote(target), quote(m.varName), quote(m.reason))
	}
	b.WriteString("}\n")
	return b.String()
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// layout renders DOT to SVG with Graphviz compiled to WebAssembly (pure
// Go, no cgo, no dot binary). The instance is costly to create and not
// safe for concurrent use: one per console, behind a mutex, with the last
// layouts cached since most state changes (a node's run) leave the graph
// as it was.
type layout struct {
	mu    sync.Mutex
	gv    *graphviz.Graphviz
	cache map[string]string
}

func newLayout() *layout { return &layout{cache: map[string]string{}} }

// svg returns the SVG of dot, or dot itself and false when it cannot be
// laid out (the page then shows the DOT text).
func (l *layout) svg(ctx context.Context, dot string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.cache[dot]; ok {
		return s, true
	}
	if l.gv == nil {
		gv, err := graphviz.New(ctx)
		if err != nil {
			return dot, false
		}
		l.gv = gv
	}
	g, err := graphviz.ParseBytes([]byte(dot))
	if err != nil {
		return dot, false
	}
	defer g.Close()
	var buf bytes.Buffer
	if err := l.gv.Render(ctx, g, graphviz.SVG, &buf); err != nil {
		return dot, false
	}
	if len(l.cache) > 64 {
		clear(l.cache)
	}
	out := svgBody(buf.String())
	l.cache[dot] = out
	return out, true
}

// svgBody drops the XML prolog and doctype so the SVG can be inlined.
func svgBody(s string) string {
	if i := strings.Index(s, "<svg"); i >= 0 {
		return s[i:]
	}
	return s
}

func (l *layout) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gv != nil {
		_ = l.gv.Close()
		l.gv = nil
	}
}
