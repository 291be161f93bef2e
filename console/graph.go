package console

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/resolver"
)

func decodeBinding(data []byte, b *binding.Binding) error { return json.Unmarshal(data, b) }

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

// graphDOT draws one federation, for the page to lay out with Graphviz
// compiled to WebAssembly (assets/graphviz.js: the npm package
// @hpcc-js/wasm-graphviz 1.29.2, its dist/index.js as published, Apache-2.0,
// licence beside it). Laying out in the browser keeps Graphviz out of the
// patchbay binary, which every listener runs: linked in Go, its WebAssembly
// runtime cost every patchbay process 87 ms and 16 MB of RSS at start.
// graphDOT draws services (public ones with a double
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
