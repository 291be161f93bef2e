package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/manifest"
)

// writeSized writes a manifest of service id whose normalized JSON, as
// publish stores it, is exactly stored bytes long.
func writeSized(t *testing.T, id string, stored int) string {
	t.Helper()
	doc := func(n int) string { return "id: " + id + "\nenvironment:\n  BLOB: " + strings.Repeat("x", n) + "\n" }
	m, err := manifest.Parse(id+".yaml", []byte(doc(1)))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), id+".yaml")
	if err := os.WriteFile(file, []byte(doc(stored-(len(data)-1))), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// Consul answers 413 to a KV value over kv_max_value_size (512 KiB by
// default). validate and publish both refuse a manifest that would not fit,
// with exit 1 and one line naming file, size and limit; one that fits
// exactly is stored by a Consul with the default setting.
func TestManifestSizeLimit(t *testing.T) {
	consul := testcluster.StartConsul(t)
	addr := "--consul-addr=" + consul.Addr
	fits := writeSized(t, "fits", manifest.MaxSize)
	over := writeSized(t, "over", manifest.MaxSize+1)
	huge := writeSized(t, "huge", 50<<20)
	overLine := over + ": normalized manifest of service over is 524289 bytes (512.0 KiB), over the limit of 524288 bytes (512 KiB): Consul keeps it in one KV value (kv_max_value_size, 512 KiB by default)"
	hugeLine := huge + ": file is 52428"
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"validate at the limit", []string{"validate", fits}, 0, ""},
		{"publish at the limit", []string{"publish", addr, fits}, 0, ""},
		{"validate one byte over", []string{"validate", over}, 1, overLine},
		{"publish one byte over", []string{"publish", addr, over}, 1, overLine},
		{"validate 50 MB", []string{"validate", huge}, 1, hugeLine},
		{"publish 50 MB", []string{"publish", addr, huge}, 1, hugeLine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := patchbay(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%.2000s", code, tt.code, stdout, stderr)
			}
			if tt.code != 0 && !strings.Contains(stderr, "over the limit of 524288 bytes (512 KiB)") {
				t.Fatalf("the limit is not named:\n%.2000s", stderr)
			}
		})
	}
	for id, want := range map[string]bool{"fits": true, "over": false, "huge": false} {
		pair, _, err := consul.Client.KV().Get("patchbay/registry/manifests/default/"+id, nil)
		if err != nil || (pair != nil) != want {
			t.Errorf("%s stored: %v (err %v), want %v", id, pair != nil, err, want)
		}
	}
}
