// Package lbtest renders load-balancer configurations for the tests of the
// packages that diff them (model, listener/balance).
package lbtest

import (
	"context"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/templates"
)

// RenderHAProxy renders builtin:haproxy for a service "lb" whose ROUTES
// requirement is bound to WEB_URL providers of "web" at 127.0.0.1 on
// ports: the configuration the model's and the balancer's tests diff.
func RenderHAProxy(t testing.TB, options map[string]string, ports ...string) []byte {
	t.Helper()
	var ps []binding.Provider
	for _, p := range ports {
		ps = append(ps, binding.Provider{Key: "WEB_URL", Value: "http://127.0.0.1:" + p, Instance: "web@n:" + p, Service: "web", Public: true})
	}
	contents, err := templates.Builtin("haproxy")
	if err != nil {
		t.Fatal(err)
	}
	out, err := templates.NewRenderer().Render(context.Background(), "haproxy", contents, templates.Data{
		Service: "lb", Options: options,
		Binding: &binding.Binding{Vars: map[string]binding.Var{"ROUTES": {Select: "all", Resolved: true, Providers: ps}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
