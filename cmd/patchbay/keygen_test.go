package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// keygen writes a seed only the owner may read, prints its public key,
// never overwrites a seed, and with --if-missing prints the existing one's.
func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	seed, pubFile := filepath.Join(dir, "resolver.nk"), filepath.Join(dir, "resolver.pub")
	code, stdout, stderr := patchbay(t, "keygen", seed, "--public-file", pubFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	public := strings.TrimSpace(stdout)
	if _, err := events.NewVerifier(public); err != nil {
		t.Fatalf("printed %q: %v", stdout, err)
	}
	if fi, err := os.Stat(seed); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Fatalf("seed file mode %v, want 0600", fi.Mode())
	}
	if got, _ := os.ReadFile(pubFile); string(got) != public+"\n" {
		t.Errorf("public file holds %q, want %q", got, public)
	}
	if s, err := readSigningKey(seed); err != nil {
		t.Fatal(err)
	} else if s.PublicKey() != public {
		t.Fatalf("readSigningKey: public key %s, want %s", s.PublicKey(), public)
	}

	before, _ := os.ReadFile(seed)
	code, _, stderr = patchbay(t, "keygen", seed)
	if after, _ := os.ReadFile(seed); code != 1 || !strings.Contains(stderr, "never overwrites") || string(after) != string(before) {
		t.Fatalf("keygen of an existing file: exit %d, stderr %q, seed changed %v", code, stderr, string(after) != string(before))
	}
	code, stdout, stderr = patchbay(t, "keygen", seed, "--if-missing")
	if code != 0 || strings.TrimSpace(stdout) != public {
		t.Fatalf("keygen --if-missing: exit %d, printed %q (want %s), stderr %s", code, stdout, public, stderr)
	}
}

// The resolver refuses a seed file others may read, and anything but a
// signing seed, before it connects anywhere.
func TestResolverSigningKeyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.nk")
	if _, _, err := keygen(good, false); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, file, stderr string
	}{
		{"readable by others", write("open.nk", string(data), 0o644), "mode 0644); chmod 600"},
		{"not a seed", write("junk.nk", "hello\n", 0o600), "give a seed made by patchbay keygen"},
		{"a public key", write("pub.nk", "N\n", 0o600), "give a seed made by patchbay keygen"},
		{"missing", filepath.Join(dir, "none.nk"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := patchbay(t, "resolver", "--signing-key-file", tt.file, "--consul-addr", "127.0.0.1:1", "--nats-url", "nats://127.0.0.1:1")
			if code != 1 || !strings.Contains(stderr, tt.stderr) || !strings.Contains(stderr, tt.file) {
				t.Fatalf("exit %d, want 1, stderr naming %s with %q:\n%s", code, tt.file, tt.stderr, stderr)
			}
			if strings.Contains(stderr, strings.TrimSpace(string(data))) {
				t.Fatalf("stderr shows the seed:\n%s", stderr)
			}
		})
	}
}

// The resolver daemon, as a process with the seed keygen wrote, signs its
// events with the key keygen printed.
func TestResolverSignsEvents(t *testing.T) {
	consul := testcluster.StartConsul(t)
	natsSrv := testcluster.StartNATS(t)
	addr := "--consul-addr=" + consul.Addr
	if code, _, stderr := patchbay(t, "publish", addr, "../../examples/services"); code != 0 {
		t.Fatalf("publish: %s", stderr)
	}
	seed := filepath.Join(t.TempDir(), "resolver.nk")
	code, stdout, stderr := patchbay(t, "keygen", seed)
	if code != 0 {
		t.Fatalf("keygen: %s", stderr)
	}
	verifier, err := events.NewVerifier(strings.TrimSpace(stdout))
	if err != nil {
		t.Fatal(err)
	}
	sub := subscribeBindings(t, natsSrv.URL, "app-www")
	startPatchbay(t, "resolver", addr, "--nats-url", natsSrv.URL, "--quiet", "0", "--signing-key-file", seed)
	m, err := sub.NextMsg(15 * time.Second)
	if err != nil {
		t.Fatalf("no bindings event: %v", err)
	}
	if err := verifier.Verify(m); err != nil {
		t.Fatalf("the resolver's event does not verify with keygen's public key: %v (headers %v)", err, m.Header)
	}
}
