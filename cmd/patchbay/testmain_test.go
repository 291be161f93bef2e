package main

import (
	"os"
	"testing"
)

// runMainEnv makes the test binary act as the patchbay command, so tests
// can run, signal and kill it as a separate process.
const runMainEnv = "PATCHBAY_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main() // exits
	}
	os.Exit(m.Run())
}
