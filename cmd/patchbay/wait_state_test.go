package main

import (
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/tracking"
)

func TestParseWaitTarget(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want tracking.Target
		err  string
	}{
		{"app@42", tracking.Target{Service: "app", Revision: 42}, ""},
		{"app/eu@7", tracking.Target{Service: "app", Region: "eu", Revision: 7}, ""},
		{"app", tracking.Target{}, "want SERVICE@REVISION"},
		{"app@0", tracking.Target{}, "above 0"},
		{"app@x", tracking.Target{}, "want SERVICE@REVISION"},
		{"/eu@3", tracking.Target{}, "service is missing"},
	} {
		got, err := parseWaitTarget(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one with %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %+v %v, want %+v", tc.in, got, err, tc.want)
		case tc.err == "" && got.String() != tc.in:
			t.Errorf("%q prints back as %q", tc.in, got.String())
		}
	}
}
