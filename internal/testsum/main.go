// Command testsum runs go test with -json and prints what a plain go test
// prints (each package's result, and the output of failed tests), then one
// line: how many tests passed, failed and were skipped, and why each was
// skipped. It exits with go test's status. `make test` runs it:
//
//	go run ./internal/testsum go test -race ./...
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run runs go test with -json and returns its exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "go" || args[1] != "test" {
		fmt.Fprintln(stderr, "usage: testsum go test [flags] [packages]")
		return 2
	}
	cmd := exec.Command("go", append([]string{"test", "-json"}, args[2:]...)...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "testsum:", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testsum:", err)
		return 2
	}
	s := newSummary(stdout)
	if err := s.read(out); err != nil {
		fmt.Fprintln(stderr, "testsum:", err)
	}
	err = cmd.Wait()
	fmt.Fprintln(stdout, s.line())
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode()
	case err != nil:
		fmt.Fprintln(stderr, "testsum:", err)
		return 2
	}
	return 0
}

// event is one line of go test -json (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// summary counts test results and prints what plain go test would.
type summary struct {
	w                      io.Writer
	passed, failed         int
	skipped                map[string]int // by reason
	output                 map[string][]string
	failedPkgs, buildFails int
}

func newSummary(w io.Writer) *summary {
	return &summary{w: w, skipped: map[string]int{}, output: map[string][]string{}}
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(s.w, sc.Text()) // not JSON: go's own message
			continue
		}
		s.add(e)
	}
	return sc.Err()
}

func (s *summary) add(e event) {
	key := e.Package + " " + e.Test
	switch {
	case e.Action == "build-output":
		fmt.Fprint(s.w, e.Output)
	case e.Action == "build-fail":
		s.buildFails++
	case e.Test == "":
		s.packageEvent(e)
	case e.Action == "output":
		s.output[key] = append(s.output[key], e.Output)
	case e.Action == "pass":
		s.passed++
		delete(s.output, key)
	case e.Action == "skip":
		s.skipped[skipReason(s.output[key])]++
		delete(s.output, key)
	case e.Action == "fail":
		s.failed++
		for _, line := range s.output[key] {
			if !strings.HasPrefix(line, "=== ") { // -v's progress lines, which plain go test leaves out
				fmt.Fprint(s.w, line)
			}
		}
		delete(s.output, key)
	}
}

// packageEvent prints a package's result line ("ok  pkg 1.2s") and, when
// it failed, what its test binary printed outside any test: as plain go
// test, which keeps a passing package's output to itself.
func (s *summary) packageEvent(e event) {
	key := e.Package + " "
	switch e.Action {
	case "output":
		s.output[key] = append(s.output[key], e.Output)
	case "fail":
		s.failedPkgs++
		for _, line := range s.output[key] {
			if t := strings.TrimSpace(line); t != "FAIL" && !strings.HasPrefix(line, "=== ") {
				fmt.Fprint(s.w, line)
			}
		}
		delete(s.output, key)
	case "pass", "skip":
		for _, line := range s.output[key] {
			if strings.HasPrefix(line, "ok  \t") || strings.HasPrefix(line, "?   \t") {
				fmt.Fprint(s.w, line)
			}
		}
		delete(s.output, key)
	}
}

// skipLine is the t.Skip message as go test prints it: "    x_test.go:12: why".
var skipLine = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)

// skipReason is the last message a skipped test logged, its t.Skip's.
func skipReason(lines []string) string {
	for _, l := range slices.Backward(lines) {
		if m := skipLine.FindStringSubmatch(strings.TrimRight(l, "\n")); m != nil && strings.TrimSpace(m[1]) != "" {
			return strings.TrimSpace(m[1])
		}
	}
	return "no reason given"
}

// line is the one-line summary.
func (s *summary) line() string {
	skipped := 0
	var reasons []string
	for _, r := range slices.Sorted(maps.Keys(s.skipped)) {
		skipped += s.skipped[r]
		reasons = append(reasons, fmt.Sprintf("%d× %s", s.skipped[r], r))
	}
	line := fmt.Sprintf("tests: %d passed, %d failed, %d skipped", s.passed, s.failed, skipped)
	if s.buildFails > 0 {
		line += fmt.Sprintf(", %d packages did not build", s.buildFails)
	}
	if len(reasons) > 0 {
		line += " (" + strings.Join(reasons, "; ") + ")"
	}
	return line
}
