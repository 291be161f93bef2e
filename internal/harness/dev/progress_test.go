package dev

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// go build -v's stderr, read by progress: it prints the count against the
// total every 5 %, or every 10 s in a slow stretch, not every package.
func TestBuildProgress(t *testing.T) {
	tests := []struct {
		name  string
		total int
		input []string // stderr lines, one a second
		want  []string // printed lines
	}{
		{"every 5 % of the total", 40, append([]string{"go: downloading github.com/hashicorp/consul v1.21.0"}, pkgs(5)...),
			[]string{
				"  building Consul: 2/40 packages (5%), 3s",
				"  building Consul: 4/40 packages (10%), 5s",
			}},
		{"a slow stretch every 10 s", 1000, append(downloads(12), pkgs(3)...),
			[]string{
				"  building Consul: downloading modules (10 so far), 10s",
				// then nothing: 3 packages of 1000 in 3 s
			}},
		{"no total", 0, pkgs(21),
			[]string{
				"  building Consul: 10 packages, 10s",
				"  building Consul: 20 packages, 20s",
			}},
		{"errors are not packages", 100, []string{"# example.com/broken", "broken/x.go:3:2: undefined: thing", "fmt"},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var out bytes.Buffer
			p := newProgress(&out, "Consul", tt.total, func() time.Time { return clock })
			for _, l := range tt.input {
				clock = clock.Add(time.Second)
				p.line(l)
			}
			got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if out.Len() == 0 {
				got = nil
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("printed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	t.Run("summary and the error's tail", func(t *testing.T) {
		p := newProgress(&bytes.Buffer{}, "Consul", 100, time.Now)
		for _, l := range []string{"fmt", "# example.com/broken", "broken/x.go:3:2: undefined: thing"} {
			p.line(l)
		}
		if got, want := p.summary(), "1 of 100 packages compiled, the rest from Go's build cache"; got != want {
			t.Errorf("summary %q, want %q", got, want)
		}
		if got := strings.Join(p.tail, "; "); !strings.Contains(got, "undefined: thing") {
			t.Errorf("tail %q lacks the compiler's message", got)
		}
	})
}

func pkgs(n int) []string {
	var l []string
	for i := range n {
		l = append(l, "github.com/hashicorp/consul/agent/p"+strings.Repeat("x", i))
	}
	return l
}

func downloads(n int) []string {
	var l []string
	for range n {
		l = append(l, "go: downloading github.com/example/m v1.0.0")
	}
	return l
}
