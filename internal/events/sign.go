package events

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/patchbay/patchbay/internal/errkind"
)

// Bindings events are signed end to end, whatever NATS's own
// authentication: the resolver signs every one with an ed25519 key of
// nkeys' "server" type (seed SN..., public key N...), so that a NATS user
// key (SU...) given by mistake is refused rather than used, and a listener
// given the public keys in listener.yaml applies no event that none of
// them signed. The signature travels in headers, so the body stays what
// DecodeBindingsChanged reads.
//
// What is signed is the subject and the body, after a label naming the
// scheme: a signed event replayed on another service's subject, or a
// signature made for anything else with the same key, does not verify.
// A replay of an event on its own subject stays possible; a listener never
// applies a revision older than one it holds, and anti-entropy restores
// Consul's.
const (
	// KeyHeader names the public key that signed the message: with several
	// keys trusted (rotation, or one key per resolver) the listener knows
	// which one to check.
	KeyHeader = "Patchbay-Key"
	// SignatureHeader is the ed25519 signature, base64url without padding.
	SignatureHeader = "Patchbay-Signature"

	// KeyPrefix is the nkeys type of signing keys.
	KeyPrefix = nkeys.PrefixByteServer

	signedLabel = "patchbay-event-v1\n"
)

var (
	// ErrSigningKey: a seed or public key is not an nkeys server key.
	ErrSigningKey = errkind.New(errkind.Input, "events: invalid signing key")
	// ErrUnsigned: a message carries no signature.
	ErrUnsigned = errkind.New(errkind.Input, "events: unsigned message")
	// ErrUnknownKey: a message is signed by a key that is not trusted.
	ErrUnknownKey = errkind.New(errkind.Input, "events: signed by an untrusted key")
	// ErrBadSignature: the signature does not match the subject and body.
	ErrBadSignature = errkind.New(errkind.Input, "events: bad signature")
)

// Signer signs messages with one key; it is safe for concurrent use.
type Signer struct {
	kp     nkeys.KeyPair
	public string
}

// NewSigner returns a signer of the seed (SN..., as `patchbay keygen`
// writes it; surrounding white space is ignored).
func NewSigner(seed []byte) (*Signer, error) {
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		return nil, fmt.Errorf("%w: %w; give a seed made by patchbay keygen (SN...)", ErrSigningKey, err)
	}
	public, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSigningKey, err)
	}
	if !nkeys.IsValidPublicServerKey(public) {
		kp.Wipe()
		return nil, fmt.Errorf("%w: the seed is not of a server key (SN...), perhaps a NATS user seed; make one with patchbay keygen", ErrSigningKey)
	}
	return &Signer{kp: kp, public: public}, nil
}

// NewKey returns a new signing key: its seed and its public key.
func NewKey() (seed []byte, public string, err error) {
	kp, err := nkeys.CreatePair(KeyPrefix)
	if err != nil {
		return nil, "", fmt.Errorf("events: create a signing key: %w", err)
	}
	defer kp.Wipe()
	if seed, err = kp.Seed(); err != nil {
		return nil, "", fmt.Errorf("events: create a signing key: %w", err)
	}
	seed = bytes.Clone(seed) // Wipe zeroes the key pair's own copy
	if public, err = kp.PublicKey(); err != nil {
		return nil, "", fmt.Errorf("events: create a signing key: %w", err)
	}
	return seed, public, nil
}

// PublicKey is what listeners are given to trust this signer (N...).
func (s *Signer) PublicKey() string { return s.public }

// Msg returns a message of subject and body, signed.
func (s *Signer) Msg(subject string, body []byte) (*nats.Msg, error) {
	sig, err := s.kp.Sign(signedBytes(subject, body))
	if err != nil {
		return nil, fmt.Errorf("events: sign %s: %w", subject, err)
	}
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(KeyHeader, s.public)
	m.Header.Set(SignatureHeader, base64.RawURLEncoding.EncodeToString(sig))
	return m, nil
}

// Verifier checks messages against the public keys it trusts.
type Verifier struct {
	keys map[string]nkeys.KeyPair
}

// NewVerifier returns a verifier that trusts the public keys (N...).
func NewVerifier(publicKeys ...string) (*Verifier, error) {
	v := &Verifier{keys: map[string]nkeys.KeyPair{}}
	for _, k := range publicKeys {
		kp, err := ParsePublicKey(k)
		if err != nil {
			return nil, err
		}
		v.keys[k] = kp
	}
	return v, nil
}

// ParsePublicKey checks a public signing key (N...).
func ParsePublicKey(k string) (nkeys.KeyPair, error) {
	if !nkeys.IsValidPublicServerKey(k) {
		return nil, fmt.Errorf("%w: %q is not a public key of patchbay keygen (N..., 56 characters)", ErrSigningKey, k)
	}
	kp, err := nkeys.FromPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrSigningKey, k, err)
	}
	return kp, nil
}

// Verify returns nil when a trusted key signed m's subject and body, else
// an error matching ErrUnsigned, ErrUnknownKey or ErrBadSignature.
func (v *Verifier) Verify(m *nats.Msg) error {
	key, sig := m.Header.Get(KeyHeader), m.Header.Get(SignatureHeader)
	if key == "" && sig == "" {
		return ErrUnsigned
	}
	kp, ok := v.keys[key]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownKey, truncate(key, 60))
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("%w: not base64url", ErrBadSignature)
	}
	if err := kp.Verify(signedBytes(m.Subject, m.Data), raw); err != nil {
		if errors.Is(err, nkeys.ErrInvalidSignature) {
			return ErrBadSignature
		}
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return nil
}

// signedBytes is what a signature covers.
func signedBytes(subject string, body []byte) []byte {
	b := make([]byte, 0, len(signedLabel)+len(subject)+1+len(body))
	b = append(append(append(append(b, signedLabel...), subject...), '\n'), body...)
	return b
}

// truncate bounds a value an attacker chose before it reaches a log.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
