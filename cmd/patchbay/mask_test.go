package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/internal/redact"
)

// resolve and explain mask URL passwords and secret values in text and
// JSON, and --show-secrets shows them.
func TestResolveMasksSecrets(t *testing.T) {
	consul := testcluster.StartConsul(t)
	addr := "--consul-addr=" + consul.Addr
	dir := writeServices(t, map[string]string{
		"app": "id: app\nrequires:\n  DATABASE_URL: \"{PRIMARY_DATABASE_URL}\"\n  STRIPE_KEY: \"{STRIPE_API_KEY}\"\n",
	})
	if code, _, stderr := patchbay(t, "publish", addr, dir); code != 0 {
		t.Fatalf("publish: exit %d\n%s", code, stderr)
	}
	for k, v := range map[string]string{"PRIMARY_DATABASE_URL": "postgres://app:hunter2@db:5432/app", "STRIPE_API_KEY": "sk_live_42"} {
		if code, _, stderr := patchbay(t, "datastore", "set", addr, k, v); code != 0 {
			t.Fatalf("datastore set: exit %d\n%s", code, stderr)
		}
	}
	secrets := []string{"hunter2", "sk_live_42"}
	tests := []struct {
		name string
		args []string
		show bool
	}{
		{"resolve", []string{"resolve", addr, "app"}, false},
		{"resolve json", []string{"resolve", addr, "app", "--json"}, false},
		{"explain", []string{"explain", addr, "app", "DATABASE_URL"}, false},
		{"explain json", []string{"explain", addr, "app", "STRIPE_KEY", "--json"}, false},
		{"resolve shown", []string{"resolve", addr, "app", "--show-secrets"}, true},
		{"resolve json shown", []string{"resolve", addr, "app", "--json", "--show-secrets"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := patchbay(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			for _, s := range secrets {
				if tt.name == "explain" && s == "sk_live_42" || tt.name == "explain json" && s == "hunter2" {
					continue // explain shows one variable
				}
				if got := strings.Contains(stdout, s); got != tt.show {
					t.Errorf("output contains %q: %v, want %v\n%s", s, got, tt.show, stdout)
				}
			}
			if !tt.show && !strings.Contains(stdout, "xxxxx") && !strings.Contains(stdout, redact.Masked) {
				t.Errorf("no mask in the output:\n%s", stdout)
			}
			if strings.HasSuffix(tt.name, "json") && !json.Valid([]byte(stdout)) {
				t.Errorf("not JSON:\n%s", stdout)
			}
		})
	}
}
