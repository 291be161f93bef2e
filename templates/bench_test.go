package templates

import (
	"context"
	"fmt"
	"testing"

	"github.com/patchbay/patchbay/binding"
)

// BenchmarkRenderNginx renders the nginx builtin for a large pool: 100
// routes of 10 upstreams each, what a public load balancer of a big
// cluster sees on every change.
func BenchmarkRenderNginx(b *testing.B) {
	var providers []binding.Provider
	for r := range 100 {
		for i := range 10 {
			providers = append(providers, binding.Provider{
				Key:      fmt.Sprintf("SVC%03d_URL", r),
				Value:    fmt.Sprintf("http://10.0.%d.%d:8080", r, i),
				Instance: fmt.Sprintf("svc%03d@n%d:8080", r, i),
				Public:   true,
			})
		}
	}
	data := Data{Service: "lb", Min: 1, Binding: &binding.Binding{Vars: map[string]binding.Var{
		"ROUTES": {Select: "all", Resolved: true, Providers: providers},
	}}}
	contents, err := Builtin("nginx")
	if err != nil {
		b.Fatal(err)
	}
	benchRender(b, "nginx", contents, data)
}

// BenchmarkRenderEnv renders the env builtin for a service with 100 variables.
func BenchmarkRenderEnv(b *testing.B) {
	vars := map[string]binding.Var{}
	for i := range 100 {
		vars[fmt.Sprintf("VAR_%03d", i)] = binding.Var{Select: "one", Resolved: true, Value: fmt.Sprintf("postgres://db-%d:5432/app?x='y'", i)}
	}
	data := Data{Service: "app", Binding: &binding.Binding{Vars: vars}}
	contents, err := Builtin("env")
	if err != nil {
		b.Fatal(err)
	}
	benchRender(b, "env", contents, data)
}

// benchRender runs a render side by side both ways: "execute" is
// consul-template's Execute (function map and parse on every call), the
// way before parsed engines; "parsed" is Render.
func benchRender(b *testing.B, name, contents string, data Data) {
	r := NewRenderer()
	ways := []struct {
		name   string
		render func(context.Context, string, string, Data) ([]byte, error)
	}{{"execute", r.renderEach}, {"parsed", r.Render}}
	for _, w := range ways {
		b.Run(w.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.render(context.Background(), name, contents, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
