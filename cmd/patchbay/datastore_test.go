package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// A datastore value that is not UTF-8 would reach every host as U+FFFD
// (bindings are JSON): both ways in refuse it, and Consul is left as it was.
func TestDatastoreRefusesNonUTF8(t *testing.T) {
	consul := testcluster.StartConsul(t)
	addr := "--consul-addr=" + consul.Addr
	file := filepath.Join(t.TempDir(), "ds.json")
	if err := os.WriteFile(file, []byte("{\"datastores\": {\"BAD_URL\": \"pg://db\xff\"}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"datastore set", []string{"datastore", "set", addr, "BAD_URL", "pg://db\xff"}, "patchbay: registry: value is not UTF-8: datastore BAD_URL: the byte at offset 7 is not UTF-8; give the value as UTF-8 text"},
		{"publish", []string{"publish", addr, file}, file + ":1:36: byte 0xff is not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := patchbay(t, tt.args...)
			if code != 1 || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d (want 1)\nstderr:\n%s", code, stderr)
			}
			if tt.name == "datastore set" && strings.Count(stderr, "\n") != 1 {
				t.Errorf("want one line on stderr:\n%s", stderr)
			}
			pair, _, err := consul.Client.KV().Get("patchbay/registry/datastores/default/BAD_URL", nil)
			if err != nil || pair != nil {
				t.Fatalf("stored %+v (err %v), want nothing", pair, err)
			}
		})
	}
}
