package binding

import (
	"slices"
	"testing"

	"github.com/patchbay/patchbay/internal/redact"
)

// One policy for every reader: a value is masked whole when its name, a
// provider's key or a datastore says secret, else shows with its URL
// passwords hidden; the argument is never changed.
func TestBindingRedacted(t *testing.T) {
	b := &Binding{Vars: map[string]Var{
		// built from a secret key: the variable's own name says nothing
		"DSN": {Value: "user=app password=hunter2", Resolved: true, Providers: []Provider{{Key: "DB_PASSWORD", Value: "hunter2"}}},
		// a datastore value, without a password in a URL
		"DB_URL": {Value: "postgres://secret@db/app", Resolved: true, Providers: []Provider{{Key: "DB_URL", Value: "postgres://secret@db/app", Datastore: true}}},
		// a live provider's URL with a password
		"API_URL": {Value: "http://u:pw1234@api:80", Resolved: true, Providers: []Provider{{Key: "API_URL", Value: "http://u:pw1234@api:80", Instance: "api-1"}}},
		"PLAIN":   {Value: "http://api:80", Resolved: true, Providers: []Provider{{Key: "PLAIN", Value: "http://api:80", Instance: "api-1"}}},
	}}
	got := b.Redacted()
	want := map[string]string{"DSN": redact.Masked, "DB_URL": redact.Masked, "API_URL": "http://u:xxxxx@api:80", "PLAIN": "http://api:80"}
	for name, w := range want {
		v := got.Vars[name]
		if v.Value != w || v.Providers[0].Value != w {
			t.Errorf("%s: %+v, want value and provider %q", name, v, w)
		}
	}
	if b.Vars["DSN"].Value != "user=app password=hunter2" || b.Vars["DSN"].Providers[0].Value != "hunter2" {
		t.Fatalf("Redacted changed its argument: %+v", b.Vars["DSN"])
	}
	secrets := b.Secrets()
	for _, s := range []string{"user=app password=hunter2", "hunter2", "postgres://secret@db/app", "pw1234"} {
		if !slices.Contains(secrets, s) {
			t.Errorf("Secrets %q lack %q", secrets, s)
		}
	}
	if slices.Contains(secrets, "http://api:80") {
		t.Errorf("Secrets %q hold a value that is shown", secrets)
	}
}
