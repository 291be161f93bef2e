package redact

import "testing"

func TestValue(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"DATABASE_URL", "postgres://app:s3cret@db:5432/app", "postgres://app:xxxxx@db:5432/app"},
		{"DATABASE_URL", "postgres://app@db:5432/app", "postgres://app@db:5432/app"},
		{"CACHE_URLS", "redis://:pw@c1:6379,redis://c2:6379", "redis://:xxxxx@c1:6379,redis://c2:6379"},
		{"DB_PASSWORD", "hunter2", Masked},
		{"stripe_api_key", "sk_live_1", Masked},
		{"SESSION_SECRET", "abc", Masked},
		{"GITHUB_TOKEN", "ghp_1", Masked},
		{"API_URL", "http://api:8080", "http://api:8080"},
		{"DB_PASSWORD", "", ""},
	}
	for _, tt := range tests {
		if got := Value(tt.name, tt.value); got != tt.want {
			t.Errorf("Value(%q, %q) = %q, want %q", tt.name, tt.value, got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		secrets []string
		want    string
	}{
		{"anywhere", "+DB=postgres://app:hunter2@db/app\n", Secrets("DB", "postgres://app:hunter2@db/app", false), "+DB=postgres://app:(masked)@db/app\n"},
		{"whole value", "-TOKEN=abcdef\n+TOKEN=ghijkl\n", []string{"abcdef", "ghijkl"}, "-TOKEN=(masked)\n+TOKEN=(masked)\n"},
		{"longest first", "x=secret-long\n", []string{"secret", "secret-long"}, "x=(masked)\n"},
		{"short alone", "@@ -1,3 +1,3 @@\n-N=3\n+N=33\n", []string{"3"}, "@@ -1,(masked) +1,(masked) @@\n-N=(masked)\n+N=33\n"},
		{"escaped password", "dsn=a%2Fb\n", Secrets("DSN", "pg://u:a%2Fb@h/d", false), "dsn=(masked)\n"},
		{"nothing", "plain\n", nil, "plain\n"},
	}
	for _, tt := range tests {
		if got := Text(tt.text, tt.secrets); got != tt.want {
			t.Errorf("%s: Text(%q) = %q, want %q", tt.name, tt.text, got, tt.want)
		}
	}
}

func TestConnectURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:secret@a:4222,tls://token@b:4222", "nats://user:xxxxx@a:4222,tls://xxxxx@b:4222"},
		{"nats://a:4222, nats://u:pw@b:4222", "nats://a:4222,nats://u:xxxxx@b:4222"},
	}
	for _, tt := range tests {
		if got := ConnectURLs(tt.in); got != tt.want {
			t.Errorf("ConnectURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
