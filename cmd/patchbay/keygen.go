package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/internal/events"
)

func newKeygenCmd(a *app) *cobra.Command {
	var publicFile string
	var ifMissing, asJSON bool
	cmd := &cobra.Command{
		Use:   "keygen SEED_FILE",
		Short: "Make the resolver's signing key: write its seed, print its public key",
		Long: `keygen makes an ed25519 key (an nkeys "server" key) that resolvers sign
bindings events with. It writes the seed (SN..., secret) to SEED_FILE, mode
0600, and prints the public key (N...) on stdout.

Give the seed to every resolver (patchbay resolver --signing-key-file, or
$PATCHBAY_SIGNING_KEY_FILE), and the public key to every listener
(listener.yaml: events: {public_keys: [N...]}, or a file of keys named by
events.public_keys_file): a listener with keys applies no bindings event that
none of them signed. Several keys may be trusted at once, to rotate a key or
to give each resolver its own.

An existing SEED_FILE is never overwritten: keygen fails, or with
--if-missing keeps the file and prints its public key.`,
		Example: `  patchbay keygen /etc/patchbay/resolver.nk --public-file /etc/patchbay/resolver.pub`,
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			public, created, err := keygen(args[0], ifMissing)
			if err != nil {
				return err
			}
			if publicFile != "" {
				if err := os.WriteFile(publicFile, []byte(public+"\n"), 0o644); err != nil {
					return fmt.Errorf("--public-file: %w", err)
				}
			}
			if asJSON {
				return a.printJSON(keygenReport{SeedFile: args[0], Created: created, PublicKey: public, PublicFile: publicFile})
			}
			_, err = fmt.Fprintln(a.stdout, public)
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, `print {"seed_file", "created", "public_key", "public_file"}; never the seed`)
	f.StringVar(&publicFile, "public-file", "", "also write the public key to this file (for listener.yaml's events.public_keys_file)")
	f.BoolVar(&ifMissing, "if-missing", false, "when SEED_FILE exists, keep it and print its public key")
	return cmd
}

// keygenReport is keygen's --json output.
type keygenReport struct {
	SeedFile   string `json:"seed_file"`
	Created    bool   `json:"created"` // false: --if-missing kept the existing seed
	PublicKey  string `json:"public_key"`
	PublicFile string `json:"public_file,omitempty"`
}

// keygen writes a new seed to path, or with ifMissing reads the one there,
// and returns its public key and whether it made it.
func keygen(path string, ifMissing bool) (string, bool, error) {
	seed, public, err := events.NewKey()
	if err != nil {
		return "", false, err
	}
	defer clear(seed)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist) && ifMissing:
		s, err := readSigningKey(path)
		if err != nil {
			return "", false, err
		}
		return s.PublicKey(), false, nil
	case errors.Is(err, fs.ErrExist):
		return "", false, usageErrorf("%s exists; keygen never overwrites a key: remove it first to make a new one, or give --if-missing to keep it", path)
	case err != nil:
		return "", false, fmt.Errorf("keygen: %w", err)
	}
	_, werr := f.Write(append(seed, '\n'))
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		_ = os.Remove(path)
		return "", false, fmt.Errorf("keygen: write %s: %w", path, err)
	}
	return public, true, nil
}

// readSigningKey reads a resolver's seed file. A file others may read
// would give them the key, so it is refused.
func readSigningKey(path string) (*events.Signer, error) {
	const want = "give the seed file patchbay keygen wrote"
	fi, err := os.Stat(path)
	if err != nil {
		return nil, usageErrorf("signing-key-file %s: %w; %s", path, err, want)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, usageErrorf("signing-key-file %s: readable or writable by group or others (mode %04o); chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErrorf("signing-key-file %s: %w; %s", path, err, want)
	}
	defer clear(data)
	s, err := events.NewSigner(data)
	if err != nil {
		return nil, usageErrorf("signing-key-file %s: %w", path, err)
	}
	return s, nil
}
