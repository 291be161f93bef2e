package listener

import (
	"fmt"
	"os"
	"strings"

	"github.com/patchbay/patchbay/internal/events"
)

// events checks the resolvers' public keys and builds the verifier of
// the node's events.
func (l *configLoader) events(c *EventsConfig) {
	keys := []string{}
	for i, k := range c.PublicKeys {
		if _, err := events.ParsePublicKey(k); err != nil {
			l.report(l.line("events", "public_keys", fmt.Sprint(i)), "events.public_keys: %s", keyProblem(k))
			continue
		}
		keys = append(keys, k)
	}
	if c.PublicKeysFile != "" {
		fileKeys, err := readKeysFile(c.PublicKeysFile)
		if err != nil {
			l.report(l.line("events", "public_keys_file"), "events.public_keys_file: %v", err)
		}
		keys = append(keys, fileKeys...)
	}
	if len(keys) == 0 {
		return
	}
	v, err := events.NewVerifier(keys...)
	if err != nil { // every key was checked above
		l.report(l.line("events"), "events: %v", err)
		return
	}
	c.verifier = v
}

// readKeysFile reads public keys, one a line. A file others may write
// would let them add a key of their own, so it is refused.
func readKeysFile(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w; give a file of public keys from patchbay keygen, one a line", err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s is writable by group or others (mode %04o), who could add a key of their own; chmod go-w %s", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w; give a file of public keys from patchbay keygen, one a line", err)
	}
	var keys []string
	for n, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if _, err := events.ParsePublicKey(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %s", path, n+1, keyProblem(line))
		}
		keys = append(keys, line)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no key; write the N... line `patchbay keygen` printed into it, or leave public_keys_file out", path)
	}
	return keys, nil
}

// keyProblem says what is wrong with a key; a seed (S...) pasted by
// mistake is never echoed.
func keyProblem(k string) string {
	if strings.HasPrefix(k, "S") {
		return "a seed (S...), which is secret, is given where a public key goes; give the N... line `patchbay keygen` printed, and make a new seed if this one was shared"
	}
	if len(k) > 60 {
		k = k[:60] + "..."
	}
	return fmt.Sprintf("%q is not a public signing key; give the N... line `patchbay keygen` printed for the resolver's seed", k)
}
