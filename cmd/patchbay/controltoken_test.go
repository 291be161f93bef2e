package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/listener"
)

// pause, resume and provision send the token of --control-token-file to an
// endpoint that requires one.
func TestControlCommandsToken(t *testing.T) {
	t.Setenv("PATCHBAY_CONTROL", "")
	t.Setenv("PATCHBAY_CONTROL_TOKEN_FILE", "")
	rec := &recordingController{}
	s := listener.NewControlServer(rec, nil, listener.WithControlLogger(discardLogger()), listener.WithControlToken("tok-1"))
	a, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := a.String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	for f, tok := range map[string]string{good: "tok-1\n", bad: "tok-2"} {
		if err := os.WriteFile(f, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		env    string // PATCHBAY_CONTROL_TOKEN_FILE
		args   []string
		code   int
		stderr string
		call   string
	}{
		{"no token", "", []string{"pause", "--control", addr}, 2, "401 Unauthorized", ""},
		{"wrong token", "", []string{"pause", "--control", addr, "--control-token-file", bad}, 2, "401 Unauthorized", ""},
		{"token file", "", []string{"pause", "--control", addr, "--control-token-file", good}, 0, "", "pause"},
		{"from the environment", good, []string{"resume", "--control", addr}, 0, "", "resume"},
		{"missing file", "", []string{"provision", "--control", addr, "--control-token-file", filepath.Join(dir, "none")}, 1, "--control-token-file: open", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATCHBAY_CONTROL_TOKEN_FILE", tt.env)
			before := len(rec.Calls())
			code, stdout, stderr := patchbay(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			calls := rec.Calls()[before:]
			if tt.call == "" && len(calls) > 0 || tt.call != "" && !slices.Equal(calls, []string{tt.call}) {
				t.Fatalf("calls %v, want %q", calls, tt.call)
			}
		})
	}
}
