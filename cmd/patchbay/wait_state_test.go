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

// The resolver stage: which services a change alters, and when the
// resolver stored them.
func TestChangeStages(t *testing.T) {
	k := func(svc, region string) bindingKey { return bindingKey{"default", svc, region} }
	before := map[bindingKey][]byte{k("www", ""): []byte("a"), k("lb", ""): []byte("b"), k("api", ""): []byte("c")}
	after := map[bindingKey][]byte{k("www", ""): []byte("a2"), k("lb", ""): []byte("b"), k("api", ""): []byte("c"), k("new", "eu"): []byte("d")}
	if got := alteredServices(before, after); strings.Join(got, ",") != "new,www" {
		t.Errorf("altered %v, want new and www", got)
	}

	stored := map[bindingKey]uint64{k("www", ""): 4, k("lb", ""): 9}
	targets, missing := writtenSince(stored, map[bindingKey]uint64{k("www", ""): 4, k("lb", ""): 10}, []string{"www"})
	if len(targets) != 0 || strings.Join(missing, ",") != "www" {
		t.Errorf("before the resolver's write: targets %v, missing %v", targets, missing)
	}
	targets, missing = writtenSince(stored, map[bindingKey]uint64{k("www", ""): 5, k("www", "eu"): 1, k("lb", ""): 10}, []string{"www"})
	if len(missing) != 0 || len(targets) != 2 || targets[0].String() != "www/eu@1" || targets[1].String() != "www@5" {
		t.Errorf("after it: targets %v, missing %v; want every region of www written, and not lb", targets, missing)
	}
}
