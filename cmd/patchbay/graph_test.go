package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/resolver"
)

// graph from files shows datastores and labels edges with the key bound.
func TestGraphDatastoresAndKeys(t *testing.T) {
	code, stdout, stderr := patchbay(t, "graph", "../../examples/services", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var g struct {
		Nodes []resolver.Node `json:"nodes"`
		Edges []resolver.Edge `json:"edges"`
	}
	if err := json.Unmarshal([]byte(stdout), &g); err != nil {
		t.Fatal(err)
	}
	var store, keyed bool
	for _, n := range g.Nodes {
		store = store || n.Datastore == "PRIMARY_DATABASE_URL"
	}
	for _, e := range g.Edges {
		keyed = keyed || (e.From == "app-www" && e.To == "datastore:PRIMARY_DATABASE_URL" && e.Key == "PRIMARY_DATABASE_URL")
	}
	if !store || !keyed {
		t.Fatalf("datastore node %v, edge to it %v:\n%s", store, keyed, stdout)
	}
	code, stdout, _ = patchbay(t, "graph", "../../examples/services")
	if code != 0 || !strings.Contains(stdout, `"app-www" -> "api" [label="READONLY_API_URL"]`) {
		t.Fatalf("dot edges must carry the key:\n%s", stdout)
	}
}
