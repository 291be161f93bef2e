package registry

import (
	"errors"
	"testing"
)

func TestCheckAddress(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"10.0.0.7", true},
		{"::1", true},
		{"fe80::1", true},
		{"web-1.internal.example", true},
		{"evil.example", true}, // syntactically valid; an LB check may still reject it
		{"localhost.", true},
		{"", false},
		{"10.0.0.7:80", false},
		{"web 1", false},
		{"a;b", false},
		{"a{b", false},
		{"-web", false},
		{"web-.example", false},
		{"http://10.0.0.7", false},
		{"x\nserver evil 1.2.3.4:80", false},
		{string(make([]byte, 254)), false},
	} {
		err := CheckAddress(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("CheckAddress(%q) = %v, want ok %v", tc.addr, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckAddress(%q) = %v, not ErrInvalid", tc.addr, err)
		}
	}
}
