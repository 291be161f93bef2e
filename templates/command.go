package templates

import (
	"sync"
)

// MaxKeptOutput bounds the output of a command kept in memory for its
// error message: a configuration-management run may print for minutes.
// What a command prints beyond it is only streamed (WithOutput).
const MaxKeptOutput = 64 << 10

// TailBuffer keeps the last max bytes written to it: the end of a
// command's output, where a failing command says why.
type TailBuffer struct {
	mu  sync.Mutex // stdout and stderr may write at once
	max int
	buf []byte
}

// NewTailBuffer keeps at most max bytes.
func NewTailBuffer(max int) *TailBuffer { return &TailBuffer{max: max} }

func (t *TailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		// Shift rather than grow: the buffer's capacity stays at max.
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String is the kept output.
func (t *TailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
