package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// runMainEnv makes the test binary act as the patchbay command, so tests
// can run, signal and kill it as a separate process.
const runMainEnv = "PATCHBAY_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}
