package command

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/templates"
)

type refusals map[string]int

func (r refusals) Refused(kind string) { r[kind]++ }

var _ Counter = refusals(nil)

func runner(t *testing.T, simulated bool) (*Runner, refusals, *bytes.Buffer) {
	t.Helper()
	var logged bytes.Buffer
	counted := refusals{}
	return NewRunner(slog.New(slog.NewTextHandler(&logged, nil)), counted, simulated, func() []string { return []string{"PATH=/usr/bin:/bin"} }), counted, &logged
}

// A check runs only on the staged path it was allowed for; a refusal is
// counted, logged and wraps ErrRefused naming listener.yaml.
func TestGuard(t *testing.T) {
	r, counted, logged := runner(t, false)
	staged := "/etc/nginx/.nginx.conf.patchbay-1"
	guard := r.Guard(AllowConfig{}, "/etc/patchbay/listener.yaml", "lb", "nginx")
	if err := guard([]string{"nginx", "-t", "-c", staged}, staged); err != nil {
		t.Fatalf("the default check on its staged path: %v", err)
	}
	err := guard([]string{"nginx", "-t", "-c", "/etc/shadow"}, staged)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "/etc/patchbay/listener.yaml") {
		t.Fatalf("a check on another path: %v, want ErrRefused naming listener.yaml", err)
	}
	if counted["command"] != 1 || !strings.Contains(logged.String(), "check of template nginx") {
		t.Errorf("refusal counted %v, logged %q", counted, logged.String())
	}
}

// A test allow refuses fails without running; an allowed one runs with
// the environment given and keeps its output's end.
func TestRunnerTest(t *testing.T) {
	r, _, _ := runner(t, false)
	marker := filepath.Join(t.TempDir(), "ran")
	off := false
	allow := AllowConfig{Commands: []CommandPattern{{"touch", "**"}, {"sh", "-c", `echo "$GREETING"`}}, Defaults: &off}
	refused := manifest.Test{Name: "refused", Command: []string{"rm", marker}, Timeout: manifest.Duration(time.Second)}
	res := r.Test(context.Background(), allow, "listener.yaml", "web", refused, nil, templates.WithEnv(nil))
	if res.Passed || !strings.Contains(res.Error, "is not in allow.commands of listener.yaml") {
		t.Errorf("refused test: %+v", res)
	}
	ran := manifest.Test{Name: "ran", Command: []string{"touch", marker}, Timeout: manifest.Duration(5 * time.Second)}
	if res := r.Test(context.Background(), allow, "listener.yaml", "web", ran, nil, templates.WithEnv([]string{"PATH=" + os.Getenv("PATH")})); !res.Passed {
		t.Fatalf("allowed test: %+v", res)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the allowed test did not run: %v", err)
	}
	echo := manifest.Test{Name: "env", Command: []string{"sh", "-c", `echo "$GREETING"`}, Timeout: manifest.Duration(5 * time.Second)}
	res = r.Test(context.Background(), allow, "listener.yaml", "web", echo, nil, templates.WithEnv([]string{"PATH=" + os.Getenv("PATH"), "GREETING=hello"}))
	if !res.Passed || res.Output != "hello" {
		t.Errorf("env test: %+v, want output hello", res)
	}
}

// A simulated node logs what it would run and runs nothing.
func TestRunnerSimulated(t *testing.T) {
	r, _, logged := runner(t, true)
	marker := filepath.Join(t.TempDir(), "ran")
	if err := r.Run(context.Background(), []string{"touch", marker}, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("a simulated node ran the command (stat: %v)", err)
	}
	if !strings.Contains(logged.String(), "would run") {
		t.Errorf("log %q lacks would run", logged.String())
	}
}
