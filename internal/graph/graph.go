// Package graph finds the cycles of a directed graph, for every graph
// patchbay checks: services' requirements (resolver) and the after: order
// of a node's services (listener). Nodes are 0 to n-1; node i has an edge
// to each node in adj[i].
package graph

import "slices"

// Cycles is what the strongly connected components of a graph say about
// its cycles.
type Cycles struct {
	adj  [][]int
	comp []int // strongly connected component of each node
	size []int // nodes in each component
}

// FindCycles finds the strongly connected components of adj with
// Tarjan's algorithm.
func FindCycles(adj [][]int) *Cycles {
	comp := tarjan(adj)
	c := &Cycles{adj: adj, comp: comp, size: make([]int, len(adj))}
	for _, k := range comp {
		c.size[k]++
	}
	return c
}

// OnCycle reports whether node i is on a cycle: in a component of two or
// more nodes, or with an edge to itself.
func (c *Cycles) OnCycle(i int) bool { return c.EdgeOnCycle(i, i) || c.size[c.comp[i]] > 1 }

// EdgeOnCycle reports whether the edge from → to is on a cycle; it need
// not be an edge of the graph when from == to.
func (c *Cycles) EdgeOnCycle(from, to int) bool {
	if from == to {
		return slices.Contains(c.adj[from], from)
	}
	return c.comp[from] == c.comp[to] && c.size[c.comp[from]] > 1
}

// Paths returns one shortest cycle through the first node of every
// component of two or more nodes, and every self-loop, each as the path
// that starts and ends at the same node, ordered by their first node.
func (c *Cycles) Paths() [][]int {
	var out [][]int
	seen := make([]bool, len(c.size))
	for i, k := range c.comp {
		if c.size[k] > 1 && !seen[k] {
			seen[k] = true
			out = append(out, c.through(i))
		}
		if c.EdgeOnCycle(i, i) {
			out = append(out, []int{i, i})
		}
	}
	return out
}

// through finds, by breadth-first search inside start's component, the
// shortest path from start back to itself.
func (c *Cycles) through(start int) []int {
	prev := map[int]int{}
	queue := []int{start}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, m := range c.adj[n] {
			if c.comp[m] != c.comp[start] {
				continue
			}
			if m == start && n != start {
				return path(prev, start, n)
			}
			if _, ok := prev[m]; !ok && m != start {
				prev[m] = n
				queue = append(queue, m)
			}
		}
	}
	return nil // unreachable: a component of two or more nodes has a cycle
}

func path(prev map[int]int, start, last int) []int {
	out := []int{start}
	for n := last; n != start; n = prev[n] {
		out = append(out, n)
	}
	slices.Reverse(out[1:])
	return append(out, start)
}

// tarjan returns the strongly connected component of every node.
func tarjan(adj [][]int) []int {
	n := len(adj)
	t := &tarjanState{adj: adj, index: make([]int, n), low: make([]int, n), comp: make([]int, n), onStack: make([]bool, n)}
	for i := range t.index {
		t.index[i] = -1
	}
	for i := range adj {
		if t.index[i] < 0 {
			t.visit(i)
		}
	}
	return t.comp
}

type tarjanState struct {
	adj              [][]int
	index, low, comp []int
	stack            []int
	onStack          []bool
	next, comps      int
}

func (t *tarjanState) visit(v int) {
	t.index[v], t.low[v] = t.next, t.next
	t.next++
	t.stack = append(t.stack, v)
	t.onStack[v] = true
	for _, w := range t.adj[v] {
		if t.index[w] < 0 {
			t.visit(w)
			t.low[v] = min(t.low[v], t.low[w])
		} else if t.onStack[w] {
			t.low[v] = min(t.low[v], t.index[w])
		}
	}
	if t.low[v] != t.index[v] {
		return
	}
	for {
		w := t.stack[len(t.stack)-1]
		t.stack = t.stack[:len(t.stack)-1]
		t.onStack[w] = false
		t.comp[w] = t.comps
		if w == v {
			break
		}
	}
	t.comps++
}
