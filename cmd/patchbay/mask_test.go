package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/testcluster"
	"github.com/patchbay/patchbay/resolver"
)

func TestMaskValue(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"DATABASE_URL", "postgres://app:s3cret@db:5432/app", "postgres://app:xxxxx@db:5432/app"},
		{"DATABASE_URL", "postgres://app@db:5432/app", "postgres://app@db:5432/app"},
		{"CACHE_URLS", "redis://:pw@c1:6379,redis://c2:6379", "redis://:xxxxx@c1:6379,redis://c2:6379"},
		{"DB_PASSWORD", "hunter2", masked},
		{"stripe_api_key", "sk_live_1", masked},
		{"SESSION_SECRET", "abc", masked},
		{"GITHUB_TOKEN", "ghp_1", masked},
		{"API_URL", "http://api:8080", "http://api:8080"},
		{"DB_PASSWORD", "", ""},
	}
	for _, tt := range tests {
		if got := maskValue(tt.name, tt.value); got != tt.want {
			t.Errorf("maskValue(%q, %q) = %q, want %q", tt.name, tt.value, got, tt.want)
		}
	}
}

// A value built from a secret provided key is masked whole, although the
// variable's own name says nothing.
func TestMaskBindingSecretProvider(t *testing.T) {
	b := &resolver.Binding{Vars: map[string]resolver.Var{
		"DSN": {Value: "user=app password=hunter2", Resolved: true, Providers: []resolver.Provider{{Key: "DB_PASSWORD", Value: "hunter2"}}},
	}}
	got := maskBinding(b)
	if v := got.Vars["DSN"]; v.Value != masked || v.Providers[0].Value != masked {
		t.Fatalf("masked %+v", v)
	}
	if b.Vars["DSN"].Value != "user=app password=hunter2" || b.Vars["DSN"].Providers[0].Value != "hunter2" {
		t.Fatalf("maskBinding changed its argument: %+v", b.Vars["DSN"])
	}
}

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
			if !tt.show && !strings.Contains(stdout, "xxxxx") && !strings.Contains(stdout, masked) {
				t.Errorf("no mask in the output:\n%s", stdout)
			}
			if strings.HasSuffix(tt.name, "json") && !json.Valid([]byte(stdout)) {
				t.Errorf("not JSON:\n%s", stdout)
			}
		})
	}
}
