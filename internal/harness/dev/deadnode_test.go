package dev

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// devNodeEnv makes the test binary run one patchbay dev node (RunNode), so
// that a test can kill it with SIGKILL as a user would.
const devNodeEnv = "PATCHBAY_TEST_DEV_NODE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(devNodeEnv); spec != "" {
		// dir|consul|nats|node
		f := strings.Split(spec, "|")
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		c := Cluster{Dir: f[0], ConsulAddr: f[1], NATSURL: f[2], Prefix: "patchbay", Federation: "test"}
		if err := RunNode(ctx, c, NodeSpec{Name: f[3], Services: []ServiceSpec{{"api", 0}}}, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A patchbay dev node killed with SIGKILL leaves its listener.yaml behind:
// the table forgets the node once its process is gone rather than show it
// unreachable forever, and a stopping cluster does not wait for it.
func TestKilledDevNodeIsForgotten(t *testing.T) {
	consul := testcluster.StartConsul(t)
	ns := testcluster.StartNATS(t)
	c := Cluster{Dir: t.TempDir(), ConsulAddr: consul.Addr, NATSURL: ns.URL, Prefix: "patchbay", Federation: "test"}
	if _, err := makeKey(c); err != nil {
		t.Fatal(err)
	}
	node := exec.Command(os.Args[0], "-test.run=^$")
	node.Env = append(os.Environ(), devNodeEnv+"="+strings.Join([]string{c.Dir, c.ConsulAddr, c.NATSURL, "api-9"}, "|"))
	node.Stdout, node.Stderr = os.Stderr, os.Stderr
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Process.Kill(); _ = node.Wait() })

	tbl := newTable(c, io.Discard, false, nil)
	ctx := context.Background()
	row := func() string {
		for line := range strings.Lines(tbl.rows(ctx)) {
			if strings.HasPrefix(line, "api-9 ") {
				return line
			}
		}
		return ""
	}
	poll := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s; table:\n%s", what, tbl.rows(ctx))
			}
		}
	}
	poll("the dev node answers in the table", func() bool { r := row(); return r != "" && !strings.Contains(r, "unreachable") })

	if err := node.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = node.Wait() // reaped, as the user's shell reaps it
	poll("the killed dev node leaves the table", func() bool { return row() == "" })
	if _, err := os.Stat(c.listenerFile("api-9")); !os.IsNotExist(err) {
		t.Errorf("the killed node's listener.yaml: %v; want it removed", err)
	}
}

// A stopping dev cluster waits for its dev nodes to deregister, but not
// for one whose process is gone (killed, before the table noticed).
func TestStopDoesNotWaitOnGoneDevNodes(t *testing.T) {
	ns := testcluster.StartNATS(t)
	c := Cluster{Dir: t.TempDir(), NATSURL: ns.URL}
	if err := os.MkdirAll(filepath.Dir(c.listenerFile("api-8")), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.listenerFile("api-8"), []byte("node: api-8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pidFile(c.listenerFile("api-8")), []byte(strconv.Itoa(gone.ProcessState.Pid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A node directory that is a symlink out of Dir: forgetting it removes nothing outside.
	outside := t.TempDir()
	for name, content := range map[string]string{"listener.yaml": "node: evil\n", "dev-node.pid": strconv.Itoa(gone.ProcessState.Pid()) + "\n"} {
		if err := os.WriteFile(filepath.Join(outside, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(c.Dir, "evil")); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	stopDevNodes(nc, Config{Cluster: c}, slog.New(slog.DiscardHandler))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stopDevNodes took %s waiting on a node whose process is gone; want no wait", took.Round(time.Millisecond))
	}
	if _, err := os.Stat(c.listenerFile("api-8")); !os.IsNotExist(err) {
		t.Errorf("the gone node's listener.yaml: %v; want it removed", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "listener.yaml")); err != nil {
		t.Errorf("a listener.yaml outside --dir, behind a symlink: %v; want it left alone", err)
	}
}
