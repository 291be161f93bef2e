package templates

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// stale writes a file as a killed install leaves it: full content, final
// permissions.
func stale(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("SECRET=hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestStaleStagedFilesRemovedAtFirstInstall(t *testing.T) {
	const content = "PORT=8080\n"
	cases := []struct {
		name      string
		installed string // the destination before; "" for none
		call      func(context.Context, File) error
		want      string // the destination after; "" for none
	}{
		{"install of a new version", "PORT=80\n", func(ctx context.Context, f File) error {
			_, err := Install(ctx, []byte(content), f)
			return err
		}, content},
		{"install of the same version", content, func(ctx context.Context, f File) error {
			_, err := Install(ctx, []byte(content), f)
			return err
		}, content},
		{"check only (a halted rollout)", "", func(ctx context.Context, f File) error {
			return Check(ctx, []byte(content), f)
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "app.env")
			if tc.installed != "" {
				if err := os.WriteFile(dest, []byte(tc.installed), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			leftovers := []string{filepath.Join(dir, ".app.env.patchbay-123456"), filepath.Join(dir, ".app.env.patchbay-9")}
			for _, p := range leftovers {
				stale(t, p)
			}
			// Not this destination's staged files: another destination's
			// (its own first install removes it), a name without the random
			// digits, one without the leading dot.
			others := []string{filepath.Join(dir, ".other.env.patchbay-42"), filepath.Join(dir, ".app.env.patchbay-notes"),
				filepath.Join(dir, "app.env.patchbay-1")}
			for _, p := range others {
				stale(t, p)
			}
			var logged bytes.Buffer
			f := File{Destination: dest, Perms: 0o640, Check: []string{"grep", "-q", "PORT=", "{STAGED}"}, Timeout: 10 * time.Second,
				Log: slog.New(slog.NewTextHandler(&logged, nil))}
			if err := tc.call(t.Context(), f); err != nil {
				t.Fatal(err)
			}
			for _, p := range leftovers {
				if exists(p) {
					t.Errorf("%s is still there after the first install of %s", p, dest)
				}
				if !strings.Contains(logged.String(), p) {
					t.Errorf("the removal of %s was not logged; log:\n%s", p, logged.String())
				}
			}
			for _, p := range others {
				if !exists(p) {
					t.Errorf("%s was removed: it is not a file staged for %s", p, dest)
				}
			}
			got, err := os.ReadFile(dest)
			switch {
			case tc.want == "" && !errors.Is(err, os.ErrNotExist):
				t.Errorf("a check installed %s (%q, %v)", dest, got, err)
			case tc.want != "" && string(got) != tc.want:
				t.Errorf("%s holds %q (%v), want %q", dest, got, err, tc.want)
			}
			if matches, _ := filepath.Glob(filepath.Join(dir, ".app.env.patchbay-[0-9]*")); len(matches) > 0 {
				t.Errorf("staged files left after the install: %v", matches)
			}
		})
	}
}

// TestRemoveStagedKeepsAnInstallInProgress holds an install in its check and
// sweeps meanwhile: the held staged file stays, a leftover beside it goes.
func TestRemoveStagedKeepsAnInstallInProgress(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "nginx.conf")
	started, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
	// The check writes the staged path, then waits for the test (bounded
	// by the check's timeout).
	script := `printf %s "$0" > "$1.tmp" && mv "$1.tmp" "$1"; while [ ! -e "$2" ]; do sleep 0.01; done`
	f := File{Destination: dest, Perms: 0o644, Check: []string{"sh", "-c", script, "{STAGED}", started, release}, Timeout: 30 * time.Second}
	done := make(chan error, 1)
	go func() {
		_, err := Install(t.Context(), []byte("events {}\n"), f)
		done <- err
	}()
	var staged string
	for deadline := time.Now().Add(10 * time.Second); staged == ""; {
		if b, err := os.ReadFile(started); err == nil {
			staged = string(b)
		} else if time.Now().After(deadline) {
			t.Fatal("the check did not start within 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling the check's marker file
	}
	leftover := filepath.Join(dir, ".nginx.conf.patchbay-77")
	stale(t, leftover)

	removed, err := RemoveStaged(dest)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{leftover}) {
		t.Errorf("RemoveStaged removed %v, want only the leftover %s", removed, leftover)
	}
	if !exists(staged) {
		t.Fatalf("the staged file of the install in progress, %s, was removed", staged)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the install in progress failed: %v", err)
	}
	if got, err := os.ReadFile(dest); err != nil || string(got) != "events {}\n" {
		t.Errorf("%s holds %q (%v) after the install", dest, got, err)
	}
	if exists(staged) {
		t.Errorf("%s still there after its install", staged)
	}
}

// TestRemoveStagedAfterKill: a staged file locked by another process is
// kept while that process lives, and removed once it is killed with -9.
func TestRemoveStagedAfterKill(t *testing.T) {
	if path := os.Getenv("PATCHBAY_TEST_HOLD_STAGED"); path != "" {
		holdStaged(path) // the child: lock as an install does, and wait to be killed
		return
	}
	dir := t.TempDir()
	dest := filepath.Join(dir, "haproxy.cfg")
	staged := filepath.Join(dir, ".haproxy.cfg.patchbay-31337")
	stale(t, staged)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestRemoveStagedAfterKill$")
	cmd.Env = append(os.Environ(), "PATCHBAY_TEST_HOLD_STAGED="+staged)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Read(make([]byte, 1)); err != nil { // the child holds the lock
		t.Fatalf("the child did not lock %s: %v", staged, err)
	}
	if removed, err := RemoveStaged(dest); err != nil || len(removed) > 0 || !exists(staged) {
		t.Fatalf("RemoveStaged removed %v (%v) while another process held it", removed, err)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no clean-up of its own
		t.Fatal(err)
	}
	_ = cmd.Wait()
	removed, err := RemoveStaged(dest)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{staged}) || exists(staged) {
		t.Errorf("after kill -9 RemoveStaged removed %v, want %s gone", removed, staged)
	}
}

func holdStaged(path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		os.Exit(3)
	}
	if err := lockStaged(f); err != nil {
		os.Exit(4)
	}
	os.Stdout.Write([]byte("L"))
	select {} // until killed
}
