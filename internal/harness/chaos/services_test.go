package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The services: every host runs an instance of backend (registered by its
// listener: the instance owners) and renders app's one file, whose content
// follows from app's binding alone: the binding's revision, the datastore
// value CHAOS_MARK (the suite's changes) and the backends' URLs.
const backendManifest = `id: backend
provides:
  BACKEND_URL: "http://{HOST}:{PORT}"
local_port: 9000
`

const appManifest = `id: app
requires:
  MARK: "{CHAOS_MARK}"
  BACKENDS: {key: BACKEND_URL, select: all, optional: true}
templates:
  state:
    contents: "revision={{ (patchbay).Revision }}\nmark={{ binding \"MARK\" }}\nbackends={{ binding \"BACKENDS\" }}\n"
    destination: /etc/app/state
`

// slowCheck makes every install of app's file wait a second in its check
// with the staged file beside the destination, and counts the checks (each
// is one run that got that far) in the host's checks.log.
const slowCheck = `    check: [sh, -c, 'echo "$(date +%s.%N)" >>"$(dirname "$1")/../../checks.log"; sleep 1', sh, "{STAGED}"]
`

// expectedFile is what a listener must render from app's stored binding.
func expectedFile(revision uint64, mark, backends string) string {
	return fmt.Sprintf("revision=%d\nmark=%s\nbackends=%s\n", revision, mark, backends)
}

// publish stores the manifests and the first CHAOS_MARK.
func (c *cluster) publish(ctx context.Context) {
	dir := filepath.Join(c.dir, "services")
	c.must(os.MkdirAll(filepath.Join(dir, "backend"), 0o755))
	c.must(os.WriteFile(filepath.Join(dir, "backend", "backend.yaml"), []byte(backendManifest), 0o644))
	c.must(os.WriteFile(filepath.Join(dir, "datastores.yaml"), []byte("datastores:\n  CHAOS_MARK: m0\n"), 0o644))
	c.must(c.publishApp(ctx, false))
	c.must(c.patchbay(ctx, "publish", dir))
}

// publishApp publishes app, with the slow check or without.
func (c *cluster) publishApp(ctx context.Context, slow bool) error {
	dir := filepath.Join(c.dir, "services", "app")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	m := appManifest
	if slow {
		m += slowCheck
	}
	if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte(m), 0o644); err != nil {
		return err
	}
	return c.patchbay(ctx, "publish", dir)
}

// patchbay runs the CLI in the root namespace against a running server.
func (c *cluster) patchbay(ctx context.Context, args ...string) error {
	addr, err := c.consulAddr()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	args = append(args, "--consul-addr", addr, "--timeout", "2s")
	out, err := exec.CommandContext(ctx, c.bin("patchbay"), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("patchbay %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// marks hands out the values of CHAOS_MARK, m1, m2, ..., each a change.
type marks struct {
	mu   sync.Mutex
	next int
}

func newMarks() *marks { return &marks{next: 1} }

// change sets a new CHAOS_MARK and returns its sequence number and when
// Consul accepted it.
func (c *cluster) change(ctx context.Context) (int, time.Time, error) {
	c.marks.mu.Lock()
	seq := c.marks.next
	c.marks.next++
	c.marks.mu.Unlock()
	err := c.patchbay(ctx, "datastore", "set", "CHAOS_MARK", "m"+strconv.Itoa(seq))
	return seq, time.Now(), err
}

// changeWhenWritable retries a change until Consul accepts it.
func (c *cluster) changeWhenWritable(ctx context.Context, timeout time.Duration) (int, time.Time, error) {
	var seq int
	var at time.Time
	err := poll(ctx, timeout, func() error {
		var err error
		seq, at, err = c.change(ctx)
		return err
	})
	return seq, at, err
}

func markSeq(mark string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(mark, "m"))
	if err != nil || !strings.HasPrefix(mark, "m") {
		return -1
	}
	return n
}

// fileState is a rendered file read back.
type fileState struct {
	raw      string
	revision uint64
	mark     string
}

func readFile(h *host) (fileState, error) {
	b, err := os.ReadFile(h.file())
	if err != nil {
		return fileState{}, err
	}
	st := fileState{raw: string(b)}
	for _, line := range strings.Split(st.raw, "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "revision":
			st.revision, _ = strconv.ParseUint(v, 10, 64)
		case "mark":
			st.mark = v
		}
	}
	return st, nil
}

// waitMark waits until every one of hosts rendered mark seq or a later one,
// and returns when the last got it.
func (c *cluster) waitMark(ctx context.Context, hosts []*host, seq int, timeout time.Duration) (time.Time, error) {
	err := poll(ctx, timeout, func() error {
		for _, h := range hosts {
			st, err := readFile(h)
			if err != nil {
				return err
			}
			if markSeq(st.mark) < seq {
				return fmt.Errorf("%s still renders %s, waiting for m%d", h.name, st.mark, seq)
			}
		}
		return nil
	})
	return time.Now(), err
}
