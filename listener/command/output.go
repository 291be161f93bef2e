package command

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/templates"
)

// Runner runs the listener's commands: checks, reloads, provision commands
// and tests. On a simulated node (patchbay dev) it only logs them, because
// `systemctl reload` or `nginx -s reload` would act on the machine itself.
type Runner struct {
	log       *slog.Logger
	metrics   Counter
	simulated bool
	nodeEnv   func() []string
}

// NewRunner returns a runner that logs to log, counts what allow refuses
// in metrics, and gives commands nodeEnv() (read at each run: listener.yaml
// reloads change it) unless a run's options give another environment.
func NewRunner(log *slog.Logger, metrics Counter, simulated bool, nodeEnv func() []string) *Runner {
	return &Runner{log: log, metrics: metrics, simulated: simulated, nodeEnv: nodeEnv}
}

// Run runs argv within timeout, or only logs it on a simulated node.
func (r *Runner) Run(ctx context.Context, argv []string, timeout time.Duration, opts ...templates.RunOption) error {
	if r.simulated {
		r.log.Info("simulated node: would run", "command", strings.Join(argv, " "))
		return nil
	}
	opts = append([]templates.RunOption{templates.WithEnv(r.nodeEnv())}, opts...)
	return templates.Run(ctx, argv, timeout, opts...)
}

// LineLogger logs a command's output one line at a time.
type LineLogger struct {
	log *slog.Logger
	mu  sync.Mutex // stdout and stderr may write at once
	buf bytes.Buffer
}

// NewLineLogger returns a LineLogger logging to log; Flush it once the
// command has ended.
func NewLineLogger(log *slog.Logger) *LineLogger { return &LineLogger{log: log} }

func (w *LineLogger) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	for {
		line, err := w.buf.ReadBytes('\n')
		if err != nil { // no newline yet: keep the partial line, up to a bound
			w.buf.Reset()
			if len(line) >= templates.MaxKeptOutput {
				w.log.Info("provision output", "line", string(line), "partial", true)
				line = nil
			}
			w.buf.Write(line)
			return len(b), nil
		}
		w.log.Info("provision output", "line", strings.TrimRight(string(line), "\r\n"))
	}
}

// Flush logs a last line without a newline.
func (w *LineLogger) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	sc := bufio.NewScanner(&w.buf)
	for sc.Scan() {
		w.log.Info("provision output", "line", sc.Text())
	}
	w.buf.Reset()
}
