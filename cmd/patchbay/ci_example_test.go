package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestCIExample: examples/ci's workflow is valid YAML with the two jobs,
// and every patchbay command line in it names a command and flags the CLI
// has, so that a renamed flag breaks this test rather than users' CI.
func TestCIExample(t *testing.T) {
	files, err := filepath.Glob("../../examples/ci/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflow in examples/ci: %v", err)
	}
	commands := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var wf struct {
			Jobs map[string]struct {
				Steps []struct {
					Run string `yaml:"run"`
				} `yaml:"steps"`
			} `yaml:"jobs"`
		}
		if err := yaml.Unmarshal(data, &wf); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if _, ok := wf.Jobs["plan"]; !ok {
			t.Errorf("%s: no plan job", file)
		}
		if _, ok := wf.Jobs["publish"]; !ok {
			t.Errorf("%s: no publish job", file)
		}
		for _, job := range wf.Jobs {
			for _, step := range job.Steps {
				for _, args := range patchbayCommands(step.Run) {
					commands++
					checkCommandLine(t, file, args)
				}
			}
		}
	}
	if commands < 3 {
		t.Errorf("%d patchbay command lines found, want validate, plan and publish", commands)
	}
}

var patchbayCall = regexp.MustCompile(`(?:^|[\s;(])patchbay ([^|>;&\n]*)`)

// patchbayCommands are the argument lists of the patchbay calls in a
// shell script (up to a pipe, redirection or list operator).
func patchbayCommands(script string) [][]string {
	var out [][]string
	for _, m := range patchbayCall.FindAllStringSubmatch(script, -1) {
		if args := strings.Fields(m[1]); len(args) > 0 && !strings.HasPrefix(args[0], "/") {
			out = append(out, args)
		}
	}
	return out
}

// checkCommandLine finds args' command and parses its flags as cobra does.
func checkCommandLine(t *testing.T, file string, args []string) {
	t.Helper()
	root := newRootCmd(&strings.Builder{}, &strings.Builder{})
	cmd, rest, err := root.Find(args)
	if err != nil || cmd == root {
		t.Errorf("%s: patchbay %s: no such command: %v", file, strings.Join(args, " "), err)
		return
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("%s: patchbay %s: %v", file, strings.Join(args, " "), err)
	}
}
