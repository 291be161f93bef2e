package listener

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/patchbay/patchbay/internal/events"
)

func newPublicKey(t *testing.T) (string, *events.Signer) {
	t.Helper()
	seed, public, err := events.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := events.NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	return public, s
}

// listener.yaml's events keys: inline and from a file, all trusted; a
// mistake is one line naming the key, and a seed is never echoed.
func TestLoadConfigEventKeys(t *testing.T) {
	k1, s1 := newPublicKey(t)
	k2, s2 := newPublicKey(t)
	k3, s3 := newPublicKey(t)
	dir := t.TempDir()
	writeKeys := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	good := writeKeys("good.pub", "# resolvers\n"+k2+"\n\n"+k3+"  # the new one\n", 0o644)
	user, _ := nkeys.CreateUser()
	userSeed, _ := user.Seed()
	userPub, _ := user.PublicKey()
	const svc = "services: [{service: app-www}]\n"

	t.Run("inline and file keys are trusted", func(t *testing.T) {
		cfg, err := LoadConfig(writeListenerYAML(t, "node: web-1\nevents:\n  public_keys: ["+k1+"]\n  public_keys_file: "+good+"\n"+svc))
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range []*events.Signer{s1, s2, s3} {
			m, _ := s.Msg(events.BindingsSubject("default", "app-www"), []byte("{}"))
			if err := cfg.Events.verifier.Verify(m); err != nil {
				t.Errorf("key %d: %v", i+1, err)
			}
		}
	})
	t.Run("no keys, no verifier", func(t *testing.T) {
		cfg, err := LoadConfig(writeListenerYAML(t, "node: web-1\n"+svc))
		if err != nil || cfg.Events.verifier != nil {
			t.Fatalf("LoadConfig: %v; verifier %v, want none", err, cfg.Events.verifier)
		}
	})

	cases := []struct {
		name, events string
		want         []string // in the error
		never        string   // never in the error
	}{
		{"a user key", "{public_keys: [" + userPub + "]}", []string{":2: events.public_keys: \"" + userPub + "\" is not a public signing key", "patchbay keygen"}, ""},
		{"a seed", "{public_keys: [" + string(userSeed) + "]}", []string{":2: events.public_keys: a seed (S...), which is secret"}, string(userSeed)},
		{"the second of two", "{public_keys: [" + k1 + ", NOPE]}", []string{":2: events.public_keys: \"NOPE\""}, ""},
		{"a missing file", "{public_keys_file: " + filepath.Join(dir, "none") + "}", []string{":2: events.public_keys_file: stat ", "no such file"}, ""},
		{"a file others may write", "{public_keys_file: " + writeKeys("open.pub", k1+"\n", 0o666) + "}", []string{"writable by group or others (mode 0666)", "chmod go-w"}, ""},
		{"a bad line in the file", "{public_keys_file: " + writeKeys("bad.pub", k1+"\nhello\n", 0o600) + "}", []string{"bad.pub:2: \"hello\" is not a public signing key"}, ""},
		{"a seed in the file", "{public_keys_file: " + writeKeys("seed.pub", string(userSeed)+"\n", 0o600) + "}", []string{"seed.pub:1: a seed (S...)"}, string(userSeed)},
		{"an empty file", "{public_keys_file: " + writeKeys("empty.pub", "# none yet\n", 0o600) + "}", []string{"holds no key"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(writeListenerYAML(t, "node: web-1\nevents: "+tc.events+"\n"+svc))
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if tc.never != "" && strings.Contains(err.Error(), tc.never) {
				t.Errorf("error shows the seed:\n%v", err)
			}
		})
	}
}

// composeKeysFile is where docker-compose.yml's listeners find the
// resolvers' public key, written by its keygen service.
const composeKeysFile = "/etc/patchbay/keys/resolver.pub"

// loadComposeConfig loads a compose node's listener.yaml with its keys
// file, which only the containers have, replaced by one with a new key.
func loadComposeConfig(t *testing.T, file string) (*Config, error) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "public_keys_file: "+composeKeysFile) {
		t.Errorf("%s does not trust the resolvers' key (events.public_keys_file: %s)", file, composeKeysFile)
	}
	public, _ := newPublicKey(t)
	dir := t.TempDir()
	keys := filepath.Join(dir, "resolver.pub")
	if err := os.WriteFile(keys, []byte(public+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "listener.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(data), composeKeysFile, keys)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path, configGlobals...)
	if err == nil && cfg.Events.verifier == nil {
		t.Errorf("%s: no verifier", file)
	}
	return cfg, err
}
