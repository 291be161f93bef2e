package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A real go test run of a small module: plain go test's output, the
// failed test's log, one summary line with the skip reasons, and go
// test's exit status.
func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		code     int
		want     []string
		notWant  []string
		lastLine string
	}{
		{
			name: "pass, skip and fail",
			files: map[string]string{"x_test.go": `package x
import "testing"
func TestPass(t *testing.T) { t.Log("quiet when passing") }
func TestNginx(t *testing.T) { t.Skip("nginx missing (apt-get install nginx)") }
func TestHAProxy(t *testing.T) { t.Skip("nginx missing (apt-get install nginx)") }
func TestFail(t *testing.T) { t.Run("sub", func(t *testing.T) { t.Error("the reason it failed") }) }
`},
			code:     1,
			want:     []string{"--- FAIL: TestFail/sub", "the reason it failed", "FAIL\texample.com/x"},
			notWant:  []string{"quiet when passing", "=== RUN"},
			lastLine: "tests: 1 passed, 2 failed, 2 skipped (2× nginx missing (apt-get install nginx))",
		},
		{
			name:     "all pass",
			files:    map[string]string{"x_test.go": "package x\nimport \"testing\"\nfunc init() { println(\"package chatter\") }\nfunc TestA(t *testing.T) {}\nfunc TestB(t *testing.T) { t.Skip() }\n"},
			want:     []string{"ok  \texample.com/x"},
			notWant:  []string{"package chatter"},
			lastLine: "tests: 1 passed, 0 failed, 1 skipped (1× no reason given)",
		},
		{
			name:     "does not build",
			files:    map[string]string{"x_test.go": "package x\nfunc broken() { undefinedThing() }\n"},
			code:     1,
			want:     []string{"undefinedThing"},
			lastLine: "tests: 0 passed, 0 failed, 0 skipped, 1 packages did not build",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.files["go.mod"] = "module example.com/x\n\ngo 1.26\n"
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Chdir(dir)
			var out, errOut bytes.Buffer
			code := run([]string{"go", "test", "-count=1", "./..."}, &out, &errOut)
			all := out.String() + errOut.String()
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(all, w) {
					t.Errorf("output has %q", w)
				}
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if last := lines[len(lines)-1]; last != tt.lastLine {
				t.Errorf("last line\n %s\nwant\n %s", last, tt.lastLine)
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
			}
		})
	}
}
