package bench

import (
	"math"
	"net/url"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		ds := make([]time.Duration, len(ns))
		for i, n := range ns {
			ds[i] = time.Duration(n) * time.Millisecond
		}
		return ds
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, unsorted
	}
	tests := []struct {
		name string
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(3, 1, 2), 50, 2 * time.Millisecond},
		{"median of even is the lower", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of 10 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.ds, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.ds, tt.p, got, tt.want)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	if got := Ratio(1, 4); got != 0.25 {
		t.Errorf("Ratio(1, 4) = %v, want 0.25", got)
	}
	if got := Ratio(1, 0); !math.IsNaN(got) {
		t.Errorf("Ratio(1, 0) = %v, want NaN", got)
	}
}

func TestClassify(t *testing.T) {
	q := func(s string) url.Values {
		v, err := url.ParseQuery(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name, method, path, query, body string
		want                            Class
	}{
		{"blocking health query", "GET", "/v1/health/service/provider", "index=42&passing=1&stale=&wait=60000ms", "", Blocking},
		{"blocking kv tree", "GET", "/v1/kv/patchbay/registry/", "index=7&recurse=", "", Blocking},
		{"plain kv get", "GET", "/v1/kv/patchbay/manifests/default/consumer", "", "", Read},
		{"kv put", "PUT", "/v1/kv/patchbay/status/node-1", "", "", Write},
		{"kv delete", "DELETE", "/v1/kv/patchbay/x", "", "", Write},
		{"session create", "PUT", "/v1/session/create", "", "", Write},
		{"agent check", "PUT", "/v1/agent/check/update/x", "", "", Agent},
		{"agent self", "GET", "/v1/agent/self", "", "", Agent},
		{"read-only txn", "PUT", "/v1/txn", "", `[{"KV":{"Verb":"get-or-empty","Key":"a"}},{"KV":{"Verb":"get","Key":"b"}}]`, Read},
		{"txn with a cas", "PUT", "/v1/txn", "", `[{"KV":{"Verb":"get","Key":"a"}},{"KV":{"Verb":"cas","Key":"b","Index":3}}]`, Write},
		{"read-only txn as consul/api sends it", "PUT", "/v1/txn", "", `[{"KV":{"Verb":"get-or-empty","Key":"a","Value":null,"Flags":0,"Index":0,"Session":"","Namespace":"","Partition":""},"Node":null,"Service":null,"Check":null}]`, Read},
		{"txn of a catalog read", "PUT", "/v1/txn", "", `[{"Node":{"Verb":"get","Node":{"Node":"n"}}}]`, Read},
		{"unparsable txn counts as a write", "PUT", "/v1/txn", "", `not json`, Write},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.method, tt.path, q(tt.query), []byte(tt.body)); got != tt.want {
				t.Errorf("Classify = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 150, stime 50 ticks.
	stat := "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 5 0 100 1000 200"
	got, err := parseCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * time.Second; got != want {
		t.Errorf("parseCPU = %v, want %v", got, want)
	}
	if _, err := parseCPU([]byte("1234 (x) S 1")); err == nil {
		t.Error("parseCPU of a short line: no error")
	}
}

func TestPathKey(t *testing.T) {
	if got, want := pathKey("PUT", "/v1/kv/patchbay/status/node-1"), "PUT /v1/kv/patchbay/status"; got != want {
		t.Errorf("pathKey = %q, want %q", got, want)
	}
	if got, want := pathKey("PUT", "/v1/session/renew/468841fd-2837-3b0e-2441-e424474309d6"), "PUT /v1/session/renew/ID"; got != want {
		t.Errorf("pathKey = %q, want %q", got, want)
	}
	if got, want := pathKey("GET", "/v1/kv/patchbay/bindings/default/consumer/eu"), "GET /v1/kv/patchbay/bindings"; got != want {
		t.Errorf("pathKey = %q, want %q", got, want)
	}
}
