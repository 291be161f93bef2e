package command

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/model"
	"github.com/patchbay/patchbay/templates"
)

// ErrRefused: listener.yaml's allow does not let a manifest use a command
// or template file on this node. Its text names the listener, the program
// that refuses, as it did before the command package existed.
var ErrRefused = errkind.New(errkind.Input, "listener: refused by allow")

// Counter counts what allow refuses ("command", "source", "destination");
// the listener's metrics hold it.
type Counter interface {
	Refused(kind string)
}

// maxTestOutput bounds the output a test result keeps: the end of it,
// where a failing command says why.
const maxTestOutput = 2 << 10

// Guard matches a template's check command once more where it runs, on
// its real staged path: the listener's refusals matched it on an example
// of that path before anything was rendered. file is the listener.yaml
// that allow comes from.
func (r *Runner) Guard(allow AllowConfig, file, service, template string) func(argv []string, staged string) error {
	return func(argv []string, staged string) error {
		if allow.CheckCommand(service, staged, argv) {
			return nil
		}
		r.metrics.Refused("command")
		r.log.Error("manifest command refused by listener.yaml allow; not run", "service", service, "refused", fmt.Sprintf("check of template %s %q", template, argv))
		return fmt.Errorf("%w: check %q is not in allow.commands of %s", ErrRefused, argv, file)
	}
}

// Test runs one of service's declared tests, its placeholders expanded
// from vars, with env, and reports its outcome; a test allow refuses
// fails without running.
func (r *Runner) Test(ctx context.Context, allow AllowConfig, file, service string, t manifest.Test, vars map[string]string, env templates.RunOption) model.TestResult {
	res := model.TestResult{Name: t.Name, Command: strings.Join(t.Command, " ")}
	argv, err := t.Argv(vars)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Command = strings.Join(argv, " ")
	if !allow.Command(service, argv) { // refusals matched the same argv; this is what runs
		res.Error = fmt.Sprintf("%v: %q is not in allow.commands of %s", ErrRefused, argv, file)
		return res
	}
	out := templates.NewTailBuffer(maxTestOutput)
	start := time.Now()
	err = r.Run(ctx, argv, time.Duration(t.Timeout), env, templates.WithOutput(out))
	res.Duration, res.Output = time.Since(start), strings.TrimSpace(out.String())
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Passed = true
	return res
}
