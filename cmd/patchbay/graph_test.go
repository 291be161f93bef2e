package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/resolver"
)

// graph from files shows datastores, edges to them only where the engine
// falls back to one, and labels edges with the key bound.
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
		if e.From == "lb-internal" && strings.HasPrefix(e.To, "datastore:") {
			t.Errorf("edge %s -> %s (%s): lb-internal's glob takes live providers only", e.From, e.To, e.Var)
		}
	}
	if !store || !keyed {
		t.Fatalf("datastore node %v, edge to it %v:\n%s", store, keyed, stdout)
	}
	code, stdout, _ = patchbay(t, "graph", "../../examples/services")
	if code != 0 || !strings.Contains(stdout, `"app-www" -> "api" [label="READONLY_API_URL"]`) {
		t.Fatalf("dot edges must carry the key:\n%s", stdout)
	}
}

// resolver --http-addr serves /healthz and /metrics while it runs.
func TestResolverHTTPAddr(t *testing.T) {
	consul := testcluster.StartConsul(t)
	natsSrv := testcluster.StartNATS(t)
	port := freePort(t)
	startPatchbay(t, "resolver", "--consul-addr="+consul.Addr, "--nats-url", natsSrv.URL, "--http-addr", "127.0.0.1:"+strconv.Itoa(port))
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		body, _ := httpGet(url + "/metrics")
		if strings.Contains(body, "\npatchbay_resolver_leader 1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader metric within 15s:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	if body, err := httpGet(url + "/healthz"); err != nil || !strings.Contains(body, `"leading":true`) {
		t.Fatalf("healthz %q, %v", body, err)
	}
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
