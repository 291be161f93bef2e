package registry

import (
	"strings"
	"testing"
)

// TestParts: a key below base splits into its segments only when it has
// the layout and is printable text; every refusal is one line naming the
// key, quoted when it is not printable.
func TestParts(t *testing.T) {
	const base = "patchbay/registry/manifests/"
	for _, tc := range []struct {
		name, key string
		want      string // the segments joined by "|", or "" for a refusal
	}{
		{"layout", base + "default/api", "default|api"},
		{"unicode", base + "default/café", "default|café"},
		{"too few segments", base + "default", ""},
		{"too many segments", base + "default/api/x", ""},
		{"empty segment", base + "default/", ""},
		{"other base", "patchbay/registry/instances/default/api", ""},
		{"line break", base + "default/\n", ""},
		{"terminal escape", base + "default/api\x1b[2J", ""},
		{"not UTF-8", base + "default/api\xff", ""},
		{"delete character", base + "default/api\x7f", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg, err := parts(tc.key, base, 2)
			if got := strings.Join(seg, "|"); got != tc.want {
				t.Fatalf("parts(%q) = %q, %v; want %q", tc.key, got, err, tc.want)
			}
			if tc.want != "" {
				return
			}
			if err == nil || !strings.Contains(err.Error(), ShownKey(tc.key)) || strings.ContainsAny(err.Error(), "\n\x1b\x7f") {
				t.Fatalf("parts(%q) refused with %q: want one printable line naming %s", tc.key, err, ShownKey(tc.key))
			}
		})
	}
}

func TestShownKey(t *testing.T) {
	for key, want := range map[string]string{
		"patchbay/status/web-1": "patchbay/status/web-1",
		"patchbay/status/wéb":   "patchbay/status/wéb",
		"patchbay/status/a\nb":  `"patchbay/status/a\nb"`,
		"patchbay/status/\xff":  `"patchbay/status/\xff"`,
		"patchbay/status/\x1b]": `"patchbay/status/\x1b]"`,
	} {
		if got := ShownKey(key); got != want {
			t.Errorf("ShownKey(%q) = %s, want %s", key, got, want)
		}
	}
}
