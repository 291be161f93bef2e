package graph

import (
	"slices"
	"testing"
)

func TestCycles(t *testing.T) {
	tests := []struct {
		name    string
		adj     [][]int
		paths   [][]int
		onCycle []bool
	}{
		{"empty", nil, nil, nil},
		{"chain", [][]int{{1}, {2}, {}}, nil, []bool{false, false, false}},
		{"two", [][]int{{1}, {0}}, [][]int{{0, 1, 0}}, []bool{true, true}},
		{"self-loop", [][]int{{0}, {0}}, [][]int{{0, 0}}, []bool{true, false}},
		{"shortest through the first node", [][]int{{1, 3}, {2}, {0}, {0}, {0}},
			[][]int{{0, 3, 0}}, []bool{true, true, true, true, false}},
		{"one per component, by first node", [][]int{{1}, {0}, {0, 3}, {2, 2}},
			[][]int{{0, 1, 0}, {2, 3, 2}}, []bool{true, true, true, true}},
		{"a component and a self-loop on one node", [][]int{{0, 1}, {0}},
			[][]int{{0, 1, 0}, {0, 0}}, []bool{true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := FindCycles(tt.adj)
			if got := c.Paths(); !slices.EqualFunc(got, tt.paths, slices.Equal) {
				t.Errorf("Paths() = %v, want %v", got, tt.paths)
			}
			for i, want := range tt.onCycle {
				if got := c.OnCycle(i); got != want {
					t.Errorf("OnCycle(%d) = %v, want %v", i, got, want)
				}
			}
		})
	}
}

func TestEdgeOnCycle(t *testing.T) {
	// 0 ⇄ 1 → 2 ↺, 2 → 3
	c := FindCycles([][]int{{1}, {0, 2}, {2, 3}, {}})
	for _, tt := range []struct {
		from, to int
		want     bool
	}{{0, 1, true}, {1, 0, true}, {1, 2, false}, {2, 2, true}, {2, 3, false}, {3, 3, false}} {
		if got := c.EdgeOnCycle(tt.from, tt.to); got != tt.want {
			t.Errorf("EdgeOnCycle(%d, %d) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}
