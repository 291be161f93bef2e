//go:build linux

package templates

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// alive reports whether pid runs: a zombie waiting for init to reap it
// does not.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may hold spaces.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// A timeout kills what the command started in the background too.
func TestRunTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	argv := []string{"sh", "-c", `sleep 300 & echo $! > "$1"; wait`, "sh", pidFile}
	err := Run(context.Background(), argv, 500*time.Millisecond)
	if !errors.Is(err, ErrCommand) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want a timeout", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the command did not start its child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscallKill(pid)
			t.Fatalf("the background child %d still runs 5s after the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countingWriter counts what is streamed through it.
type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

// A command printing megabytes has all of it streamed, and only the last
// MaxKeptOutput bytes kept for its error.
func TestRunBoundsKeptOutput(t *testing.T) {
	const size = 8 << 20
	argv := []string{"sh", "-c", `head -c ` + strconv.Itoa(size) + ` /dev/zero | tr '\0' x; echo; echo last "$0"; exit 3`, "words"}
	var streamed countingWriter
	err := Run(context.Background(), argv, time.Minute, WithOutput(&streamed))
	if !errors.Is(err, ErrCommand) {
		t.Fatalf("Run = %v, want the exit status", err)
	}
	if got := streamed.n.Load(); got < size {
		t.Errorf("streamed %d bytes, want all %d", got, size)
	}
	if len(err.Error()) > MaxKeptOutput+1024 {
		t.Errorf("the error holds %d bytes of output, want at most about %d", len(err.Error()), MaxKeptOutput)
	}
	if out := CommandOutput(err); !strings.HasSuffix(out, "last words") || len(out) > MaxKeptOutput+8 {
		t.Errorf("the kept output lost its end or its bound: %d bytes ending %q", len(out), out[max(0, len(out)-40):])
	}
	if strings.Contains(err.Error(), "last words") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("error %.200q: want the command and its exit status, not its output (messages leave the node)", err)
	}
}

func TestTailBuffer(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"fits", []string{"ab", "cd"}, "abcd"},
		{"drops the oldest", []string{"abc", "def"}, "cdef"},
		{"one long write", []string{"ab", "0123456789"}, "6789"},
		{"exactly max", []string{"wxyz"}, "wxyz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewTailBuffer(4)
			for _, w := range tt.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := b.String(); got != tt.want {
				t.Errorf("kept %q, want %q", got, tt.want)
			}
			if cap(b.buf) > 8 {
				t.Errorf("capacity %d grew past the bound", cap(b.buf))
			}
		})
	}
}

func syscallKill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// TestRunRefusesAnEmptyCommand: an argv with no program (a manifest
// written past validation) is an error, not a slice-bounds panic.
func TestRunRefusesAnEmptyCommand(t *testing.T) {
	for _, argv := range [][]string{nil, {}, {""}} {
		err := Run(context.Background(), argv, time.Second)
		if !errors.Is(err, ErrCommand) || !strings.Contains(err.Error(), "no program") {
			t.Errorf("Run(%q) = %v, want ErrCommand naming no program", argv, err)
		}
	}
}
