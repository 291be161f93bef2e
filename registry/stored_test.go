package registry

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/resolver"
)

// TestSnapshotValidatesStoredEntries: values written into Consul by hand,
// past publish, datastore set and register, are read with their rules:
// each bad one is skipped with a reason naming its key, and a refused
// datastore value becomes the reason of what needs it, never its value.
func TestSnapshotValidatesStoredEntries(t *testing.T) {
	consul := testcluster.StartConsul(t)
	c := newClient(t, consul)
	ctx := context.Background()
	publish(t, c, parseManifest(t, "id: app\nrequires: {DB_URL: \"{DB_URL}\"}\n"))
	good := `{"id":"api@n1:80","service":"api","federation":"default","node":"n1","address":"10.0.0.1","port":80,"index":-1,"provides":{"API_URL":"http://10.0.0.1:80"}}`
	bad := map[string]struct{ key, value, want string }{
		"empty test command":     {c.keys.manifest("default", "sdef"), `{"id":"sdef","federation":"default","tests":[{"name":"empty","command":[]}]}`, "tests[0].command: missing"},
		"manifest of another id": {c.keys.manifest("default", "other"), `{"id":"sdef","federation":"default"}`, "stored under the key of default/other"},
		"manifest nested deep":   {c.keys.manifest("default", "deep"), `{"id":"deep","environment":{"A":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}}`, "nested deeper than 64 levels"},
		"instance port 0":        {c.keys.instance("default", "api", "api@n2:0"), strings.NewReplacer("n1:80", "n2:0", `"port":80`, `"port":0`, `"node":"n1"`, `"node":"n2"`).Replace(good), "port 0 is not 1 to 65535"},
		"instance bad region":    {c.keys.instance("default", "api", "api@n3:80"), strings.NewReplacer("n1:80", "n3:80", `"node":"n1"`, `"node":"n3","region":"eu/west"`).Replace(good), `region "eu/west" is not a DNS label`},
		"instance not UTF-8":     {c.keys.instance("default", "api", "api@n4:80"), strings.NewReplacer("n1:80", "n4:80", `"node":"n1"`, `"node":"n4"`, "http://", "http://\xff").Replace(good), "is not UTF-8"},
		"datastore not UTF-8":    {c.keys.datastore("default", "DB_URL"), "postgres://u:pw\xff\xfe@db/app", "the byte at offset 15 is not UTF-8"},
		"datastore key":          {c.keys.datastore("default", "db-url"), "x", "is not an upper-case name"},
	}
	put := func(key, value string) {
		t.Helper()
		if _, err := consul.Client.KV().Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	put(c.keys.instance("default", "api", "api@n1:80"), good)
	for _, b := range bad {
		put(b.key, b.value)
	}
	snap, err := c.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	skipped := map[string]string{}
	for _, s := range snap.Skipped {
		skipped[s.Key] = s.Reason
	}
	for name, b := range bad {
		if got, ok := skipped[b.key]; !ok || !strings.Contains(got, b.want) {
			t.Errorf("%s: skipped reason %q (listed %v), want one containing %q", name, got, ok, b.want)
		}
	}
	// The good instance, written without a session, is read but not live.
	if len(snap.Manifests) != 1 || len(snap.Instances) != 0 || len(snap.NotLive) != 1 || snap.NotLive[0].Node != "n1" {
		t.Errorf("snapshot kept %d manifests, instances %+v, not live %+v; want app and api@n1:80 only", len(snap.Manifests), snap.Instances, snap.NotLive)
	}
	b, ok := resolver.Resolve(snap).Lookup("default", "app", "")
	if !ok {
		t.Fatal("no binding for app")
	}
	if v := b.Vars["DB_URL"]; v.Resolved || strings.Contains(v.Value, "pw") {
		t.Errorf("DB_URL bound to %q from a value that is not UTF-8", v.Value)
	}
	want := "the datastore value of DB_URL was refused (" + c.keys.datastore("default", "DB_URL")
	if len(b.Unresolved) != 1 || !strings.Contains(b.Unresolved[0].Reason, want) {
		t.Errorf("unresolved %+v, want a reason containing %q", b.Unresolved, want)
	}

	// A listener's read gives the manifest's problem as the service's,
	// naming the key; the other service it hosts reads as usual.
	hosted, err := c.ReadNode(ctx, "default", []string{"sdef", "app"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if h := hosted[0]; h.Manifest != nil || !strings.Contains(h.Problem, c.keys.manifest("default", "sdef")) || !strings.Contains(h.Problem, "tests[0].command: missing") {
		t.Errorf("sdef read as %+v, want a problem naming its key and the empty command", h)
	}
	if h := hosted[1]; h.Manifest == nil || h.Problem != "" {
		t.Errorf("app read as %+v, want its manifest", h)
	}
	// A binding written by hand past the largest revision is refused, not
	// held: a listener holding its revision would ignore the rewrite.
	put(c.keys.binding("default", "app", ""), `{"federation":"default","service":"app","region":"","revision":18446744073709551615,"vars":{}}`)
	hosted, err = c.ReadNode(ctx, "default", []string{"app"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if h := hosted[0]; h.Binding != nil || !strings.Contains(h.Problem, c.keys.binding("default", "app", "")) || !strings.Contains(h.Problem, "revision 18446744073709551615 is above the largest") {
		t.Errorf("app with a wrapping revision read as %+v, want a problem naming its binding's key", h)
	}
	if _, err := c.Manifest(ctx, "default", "sdef"); err == nil || !strings.Contains(err.Error(), "tests[0].command: missing") {
		t.Errorf("Manifest(sdef): %v, want the empty command refused", err)
	}
}

// TestStatusesValidated: status records written into Consul by hand are
// read with PutStatus's rules: a record under another node's key, with a
// result no listener records, or not text is skipped naming its key, and
// never shown as a node's outcome.
func TestStatusesValidated(t *testing.T) {
	consul := testcluster.StartConsul(t)
	c := newClient(t, consul)
	ctx := context.Background()
	if err := c.PutStatus(ctx, Status{Node: "web-1", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	bad := map[string]struct{ key, value, want string }{
		"another node's key": {c.keys.nodeStatus("web-2"), `{"node":"web-1","result":"ok"}`, `status of node "web-1" stored under the key of "web-2"`},
		"unknown result":     {c.keys.nodeStatus("web-3"), `{"node":"web-3","result":"pwned"}`, `status result "pwned" is not one of`},
		"not UTF-8":          {c.keys.nodeStatus("web-4"), "{\"node\":\"web-4\",\"result\":\"ok\",\"message\":\"\xff\"}", "is not UTF-8"},
		"malformed":          {c.keys.nodeStatus("web-5"), `{"node":`, "malformed status JSON"},
		"bad federation":     {c.keys.nodeStatus("web-6"), `{"node":"web-6","federation":"a/b","result":"ok"}`, "is not a DNS label"},
	}
	for _, b := range bad {
		if _, err := consul.Client.KV().Put(&api.KVPair{Key: b.key, Value: []byte(b.value)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	statuses, skipped, err := c.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 1 || statuses[0].Node != "web-1" {
		t.Errorf("statuses %+v, want web-1's alone", statuses)
	}
	reasons := map[string]string{}
	for _, s := range skipped {
		reasons[s.Key] = s.Reason
	}
	for name, b := range bad {
		if got := reasons[b.key]; !strings.Contains(got, b.want) || !strings.Contains(got, b.key) {
			t.Errorf("%s: skipped reason %q, want one naming %s and containing %q", name, got, b.key, b.want)
		}
	}
	if err := c.PutStatus(ctx, Status{Node: "web-1", Result: "pwned"}); err == nil {
		t.Error("PutStatus wrote a result no listener records")
	}
}

// TestDecodeStatusAnswer: a status answered over NATS is read with the
// same rules, whoever published it.
func TestDecodeStatusAnswer(t *testing.T) {
	for _, tc := range []struct {
		data string
		ok   bool
	}{
		{`{"node":"web-1","result":"failed","live":true}`, true},
		{`{"node":"","result":"ok"}`, false},
		{`{"node":"a/b","result":"ok"}`, false},
		{`{"node":"web-1\n","result":"ok"}`, false},
		{`{"node":"web-1","result":""}`, false},
		{`[]`, false},
	} {
		_, err := DecodeStatus("", "", []byte(tc.data))
		if (err == nil) != tc.ok {
			t.Errorf("DecodeStatus(%s): %v, want ok %v", tc.data, err, tc.ok)
		}
	}
}
