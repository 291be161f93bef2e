package events

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

func newTestSigner(t testing.TB) *Signer {
	t.Helper()
	seed, _, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(seed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func typicalEvent() (string, []byte) {
	e := BindingsChanged{Federation: "default", Service: "app-www", Region: "eu", Revision: 42, ModifyIndex: 1234,
		Binding: json.RawMessage(`{"revision":42,"values":{"DB_URL":"postgres://db-1.internal:5432/app","API":"http://10.0.0.12:9090"},"manifest_digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}`)}
	return BindingsSubject(e.Federation, e.Service), e.Encode()
}

func TestSignVerify(t *testing.T) {
	signer, other := newTestSigner(t), newTestSigner(t)
	v, err := NewVerifier(other.PublicKey(), signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	subject, body := typicalEvent()
	signed := func() *nats.Msg {
		m, err := signer.Msg(subject, body)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	cases := []struct {
		name   string
		tamper func(m *nats.Msg)
		want   error // nil: verifies
	}{
		{"signed", func(*nats.Msg) {}, nil},
		{"unsigned", func(m *nats.Msg) { m.Header = nil }, ErrUnsigned},
		{"body changed", func(m *nats.Msg) { m.Data = []byte(strings.Replace(string(m.Data), "42", "43", 1)) }, ErrBadSignature},
		{"body empty", func(m *nats.Msg) { m.Data = nil }, ErrBadSignature},
		{"replayed on another subject", func(m *nats.Msg) { m.Subject = BindingsSubject("default", "api") }, ErrBadSignature},
		{"signature of another key", func(m *nats.Msg) {
			o, _ := other.Msg(subject, body)
			m.Header.Set(SignatureHeader, o.Header.Get(SignatureHeader))
		}, ErrBadSignature},
		{"key header names another trusted key", func(m *nats.Msg) { m.Header.Set(KeyHeader, other.PublicKey()) }, ErrBadSignature},
		{"untrusted key", func(m *nats.Msg) {
			o, _ := newTestSigner(t).Msg(subject, body)
			m.Header = o.Header
		}, ErrUnknownKey},
		{"signature not base64", func(m *nats.Msg) { m.Header.Set(SignatureHeader, "!!!") }, ErrBadSignature},
		{"signature truncated", func(m *nats.Msg) {
			m.Header.Set(SignatureHeader, m.Header.Get(SignatureHeader)[:20])
		}, ErrBadSignature},
		{"signature alone", func(m *nats.Msg) { m.Header.Del(KeyHeader) }, ErrUnknownKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := signed()
			tc.tamper(m)
			err := v.Verify(m)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewSignerRefusesOtherKeys(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	userSeed, _ := user.Seed()
	cases := []struct {
		name string
		seed string
	}{
		{"a NATS user seed", string(userSeed)},
		{"not a seed", "hello"},
		{"empty", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewSigner([]byte(tc.seed)); !errors.Is(err, ErrSigningKey) {
				t.Fatalf("NewSigner: %v, want ErrSigningKey", err)
			}
		})
	}
	seed, public, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(append(seed, '\n')) // as a file holds it
	if err != nil {
		t.Fatalf("NewSigner of a fresh seed: %v", err)
	}
	if s.PublicKey() != public || public[0] != 'N' {
		t.Fatalf("NewSigner of a fresh seed: %v, public key %q, want %q", err, s.PublicKey(), public)
	}
}

func TestNewVerifierRefusesOtherKeys(t *testing.T) {
	user, _ := nkeys.CreateUser()
	userPub, _ := user.PublicKey()
	_, public, _ := NewKey()
	flipped := []byte(public)
	flipped[10] ^= 'A' ^ 'B' // the CRC no longer matches
	for _, k := range []string{userPub, "N", public[:len(public)-1], string(flipped), ""} {
		if _, err := NewVerifier(k); !errors.Is(err, ErrSigningKey) {
			t.Errorf("NewVerifier(%q): %v, want ErrSigningKey", k, err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	s := newTestSigner(b)
	subject, body := typicalEvent()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := s.Msg(subject, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	s := newTestSigner(b)
	v, err := NewVerifier(s.PublicKey())
	if err != nil {
		b.Fatal(err)
	}
	m, err := s.Msg(typicalEvent())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(m.Data)))
	for b.Loop() {
		if err := v.Verify(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode is what a listener did with every event before events
// were signed: the reference beside BenchmarkSign and BenchmarkVerify.
func BenchmarkDecode(b *testing.B) {
	subject, body := typicalEvent()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeBindingsChanged(subject, body); err != nil {
			b.Fatal(err)
		}
	}
}
