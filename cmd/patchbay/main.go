// Command patchbay binds the requirements of services to live providers and
// keeps every host's files in step with them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/patchbay/patchbay/internal/errkind"
)

// Exit codes: the CLI contract.
const (
	exitOK          = 0
	exitUser        = 1 // bad input: fix the command line, a manifest, a config file
	exitInternal    = 2 // a backend is unreachable or something broke inside
	exitChanges     = 3 // plan and impact: something would change
	exitNotApplied  = 4 // wait, publish --wait: a node failed, skipped the change or its rollout is halted
	exitWaitTimeout = 5 // wait, publish --wait: --wait-timeout passed with nodes pending, paused or not answering
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	routeStdLog(slog.New(slog.NewTextHandler(os.Stderr, nil))) // until the command's settings are known
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, ownGlobalLog)
	stop()
	os.Exit(code)
}

// run executes one command line and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, opts ...func(*app)) int {
	a := newApp(stdout, stderr)
	for _, o := range opts {
		o(a)
	}
	root := a.rootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var reported alreadyReported
	if !errors.As(err, &reported) {
		fmt.Fprintln(stderr, "patchbay: "+err.Error())
	}
	return exitCode(err)
}

// exitCode is the one place where errors become exit codes. Each sentinel
// states its kind where it is declared (internal/errkind), so a new one is
// classified by whoever adds it, not by a list here; TestSentinelsHaveKinds
// fails on a sentinel declared without one. An error with no kind at all
// (a bug, an I/O error nobody wrapped) exits 2 like a backend failure: a
// script retries it or a person reads it, whereas exit 1 would tell them
// to change input that may be right.
func exitCode(err error) int {
	var ran commandError
	switch {
	case err == nil:
		return exitOK
	case !errors.As(err, &ran):
		return exitUser // cobra refused the command line before anything ran
	case errors.Is(err, errChanges):
		return exitChanges
	case errors.Is(err, errNotApplied):
		return exitNotApplied
	case errors.Is(err, errWaitTimeout):
		return exitWaitTimeout
	}
	switch errkind.Of(err) {
	case errkind.Input:
		return exitUser
	default: // errkind.Backend, and errkind.Unknown as said above
		return exitInternal
	}
}

// errUsage marks a command's error as the user's to fix.
var errUsage = errkind.New(errkind.Input, "usage")

// usageErrorf returns an error that exits with exitUser; like fmt.Errorf,
// %w wraps its cause.
func usageErrorf(format string, args ...any) error {
	return usage{err: fmt.Errorf(format, args...)}
}

type usage struct{ err error }

func (u usage) Error() string        { return u.err.Error() }
func (u usage) Unwrap() error        { return errors.Unwrap(u.err) }
func (u usage) Is(target error) bool { return target == errUsage }
func (u usage) Kind() errkind.Kind   { return errkind.Of(errUsage) }

// commandError marks an error returned by a command's own code, as opposed
// to cobra's parsing of the command line.
type commandError struct{ err error }

func (e commandError) Error() string { return e.err.Error() }
func (e commandError) Unwrap() error { return e.err }

// alreadyReported is an error whose details the command printed itself
// (every problem of a manifest, say); main adds nothing.
type alreadyReported struct{ err error }

func (e alreadyReported) Error() string { return e.err.Error() }
func (e alreadyReported) Unwrap() error { return e.err }
