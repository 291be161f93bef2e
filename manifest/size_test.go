package manifest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bigManifest returns a manifest document whose normalized JSON is exactly
// stored bytes long.
func bigManifest(t *testing.T, stored int) string {
	t.Helper()
	doc := func(n int) string { return "id: big\nenvironment:\n  BLOB: " + strings.Repeat("x", n) + "\n" }
	m, err := Parse("big.yaml", []byte(doc(1)))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return doc(stored - (len(data) - 1))
}

// Consul refuses a KV value over kv_max_value_size (512 KiB by default):
// validation refuses what would not fit, naming the file, the size and the
// limit, and accepts what fits exactly.
func TestSizeLimit(t *testing.T) {
	huge := "id: huge\nenvironment:\n  BLOB: " + strings.Repeat("x", 50<<20) + "\n"
	tests := []struct {
		name string
		doc  string
		want string // "" for valid
	}{
		{"normalized JSON at the limit", bigManifest(t, MaxSize), ""},
		{"normalized JSON one byte over", bigManifest(t, MaxSize+1), "svc.yaml: normalized manifest of service big is 524289 bytes (512.0 KiB), over the limit of 524288 bytes (512 KiB): Consul keeps it in one KV value (kv_max_value_size, 512 KiB by default)"},
		{"50 MB file", huge, "svc.yaml: file is 52428831 bytes (50.0 MiB), over the limit of 524288 bytes (512 KiB): Consul keeps it in one KV value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "svc.yaml")
			if err := os.WriteFile(file, []byte(tt.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			set, err := Load(dir)
			if tt.want == "" {
				if err != nil || len(set.Services) != 1 {
					t.Fatalf("Load = %d services, %v; want one, valid", len(set.Services), err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(strings.TrimPrefix(err.Error(), dir+"/"), tt.want) {
				t.Fatalf("Load error = %v\nwant %s", err, tt.want)
			}
			if _, err := Parse("svc.yaml", []byte(tt.doc)); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v\nwant %s", err, tt.want)
			}
		})
	}
}
