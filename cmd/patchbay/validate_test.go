package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// checkGolden compares got with testdata/NAME.golden; -update rewrites it.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v; run go test ./cmd/patchbay -run %s -update", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (-update rewrites it after review)\ngot:\n%s\nwant:\n%s", file, got, want)
	}
}

// The first hour: validate catches a template every host would refuse (at
// the manifest's line and the template's) and warns about a required key
// nothing provides, with the published key it most likely meant. With
// Consul unreachable it says that it compared the files given only.
func TestValidateFirstHourMistakes(t *testing.T) {
	consul := testcluster.StartConsul(t)
	addr := "--consul-addr=" + consul.Addr
	published := writeServices(t, map[string]string{
		"api":   "id: api\nprovides: {READONLY_API_URL: \"http://{HOST}:{PORT}/ro\"}\n",
		"cache": "id: cache\nprovides: {CACHE_URL: \"redis://{HOST}:{PORT}\"}\n",
	})
	if code, _, stderr := patchbay(t, "publish", addr, published); code != 0 {
		t.Fatal(stderr)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"validate_mistakes", []string{"validate", addr, "testdata/mistakes"}},
		{"validate_mistakes_no_consul", []string{"validate", "--consul-addr=127.0.0.1:1", "testdata/mistakes"}},
		{"validate_mistakes_json", []string{"validate", "--json", addr, "testdata/mistakes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := patchbay(t, tt.args...)
			out := fmt.Sprintf("$ patchbay %s\nexit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(tt.args, " "), code, stdout, stderr)
			out = strings.ReplaceAll(out, consul.Addr, "CONSUL")
			checkGolden(t, tt.name, out)
		})
	}
}

// publish refuses a manifest whose template does not parse (nothing is
// stored) and warns, without refusing, about a required key nothing
// provides, suggesting a datastore key Consul holds.
func TestPublishFirstHourMistakes(t *testing.T) {
	consul := testcluster.StartConsul(t)
	addr := "--consul-addr=" + consul.Addr
	if code, _, stderr := patchbay(t, "datastore", "set", addr, "PRIMARY_DATABASE_URL", "postgres://db/app"); code != 0 {
		t.Fatal(stderr)
	}
	dir := writeServices(t, map[string]string{
		"typo":     "id: typo\nrequires: {DB: \"{PRIMARY_DATABSE_URL}\"}\n",
		"template": "id: template\ntemplates:\n  conf: {destination: /etc/t.conf, contents: \"{{ .Foo }\"}\n",
	})
	tests := []struct {
		name   string
		path   string
		code   int
		stderr string
		stored bool
	}{
		{"typo", "typo", 0, filepath.Join(dir, "typo/patchbay.yaml") + `:2:16: warning: requires DB: no service or datastore provides PRIMARY_DATABSE_URL; did you mean "PRIMARY_DATABASE_URL"?` + "\n", true},
		{"template", "template", 1, filepath.Join(dir, "template/patchbay.yaml") + `:3:46: template conf, line 1: unexpected "}" in operand; every host would refuse to render it` + "\n1 problem found; nothing was published\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := patchbay(t, "publish", addr, filepath.Join(dir, tt.path))
			if code != tt.code || stderr != tt.stderr {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s\nwant stderr:\n%s", code, tt.code, stdout, stderr, tt.stderr)
			}
			pair, _, err := consul.Client.KV().Get("patchbay/registry/manifests/default/"+tt.path, nil)
			if err != nil || (pair != nil) != tt.stored {
				t.Fatalf("stored: %v (err %v), want %v", pair != nil, err, tt.stored)
			}
		})
	}
}
