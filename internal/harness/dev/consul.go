package dev

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/internal/errkind"
)

// Errors for the user to fix.
var (
	// ErrNoConsul: no Consul binary was found and none could be built.
	ErrNoConsul = errkind.New(errkind.Input, "dev: no consul binary")
	// ErrNoNATS: no nats-server binary was found and none could be built.
	ErrNoNATS = errkind.New(errkind.Input, "dev: no nats-server binary")
	// ErrInUse: an address or directory the dev cluster needs is taken.
	ErrInUse = errkind.New(errkind.Input, "dev: in use")
)

// SourceRoot returns the patchbay source tree that holds dir (its go.mod
// names patchbay's module), or "" when dir is outside one.
func SourceRoot(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/patchbay/patchbay\n") {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// FindConsul returns a Consul binary: the one on PATH, else srcRoot's
// bin/consul (which `make test` builds too), else one built there from the
// pinned tools module, with progress written to w.
func FindConsul(ctx context.Context, srcRoot string, w io.Writer) (string, error) {
	return findServer(ctx, server{
		name: "consul", title: "Consul", module: "tools/consul", pkg: "github.com/hashicorp/consul", took: "10 minutes on 2 cores, over 20 on a loaded machine",
		install: "install Consul (https://developer.hashicorp.com/consul/install)", missing: ErrNoConsul,
	}, srcRoot, w)
}

// server is a program the dev cluster runs, and where to build it from.
type server struct {
	name    string // on PATH and in bin/
	title   string // for people
	module  string // directory of the module that pins it, in the source tree
	pkg     string // its main package
	took    string // a cold build's rough duration on 2 cores
	install string // how a user installs it
	missing error  // the sentinel when neither is possible
}

// findServer returns s's binary: on PATH, else in srcRoot's bin/, else
// built there from its pinned module.
func findServer(ctx context.Context, s server, srcRoot string, w io.Writer) (string, error) {
	if path, err := exec.LookPath(s.name); err == nil {
		return path, nil
	}
	if srcRoot == "" {
		return "", fmt.Errorf("%w: none on PATH, and this is not a patchbay source tree to build one in; %s or run patchbay dev in a clone of patchbay", s.missing, s.install)
	}
	cached := filepath.Join(srcRoot, "bin", s.name)
	if _, err := os.Stat(cached); err == nil {
		return cached, nil
	}
	module := filepath.Join(srcRoot, s.module)
	version := pinnedVersion(filepath.Join(module, "go.mod"), s.pkg)
	fmt.Fprintf(w, "No %s on PATH: building %s %s from source into %s, once: about %s (seconds once Go's cache is warm; cached afterwards). Put %s on PATH to skip this.\n",
		s.name, s.title, version, cached, s.took, s.name)
	total := countPackages(ctx, module, s.pkg) // after the line above: a cold module cache makes this minutes of downloads
	if total > 0 {
		fmt.Fprintf(w, "  building %s: %d packages in all (go list -deps); those not in Go's build cache are compiled\n", s.title, total)
	}
	if err := build(ctx, module, s.pkg, cached, s.title, total, w); err != nil {
		return "", fmt.Errorf("%w: %w; %s to skip the build", s.missing, err, s.install)
	}
	return cached, nil
}

// pinnedVersion reads a module's version from a go.mod require line.
func pinnedVersion(gomod, module string) string {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "(pinned)"
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == module {
			return f[1]
		}
	}
	return "(pinned)"
}

// Build compiles pkg of the module in dir into out, reporting the packages
// compiled so far against the total on w: a cold build of a large program
// is minutes of silence otherwise. out appears only once complete.
func Build(ctx context.Context, dir, pkg, out string, w io.Writer) error {
	return build(ctx, dir, pkg, out, pkg, countPackages(ctx, dir, pkg), w)
}

// countPackages is how many packages pkg's build takes, its own and the
// standard library's (go list -deps), or 0 when go cannot tell.
func countPackages(ctx context.Context, dir, pkg string) int {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", pkg)
	cmd.Dir = dir
	list, err := cmd.Output()
	if err != nil {
		return 0 // the build reports why
	}
	return strings.Count(string(list), "\n")
}

func build(ctx context.Context, dir, pkg, out, title string, total int, w io.Writer) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	tmp := out + ".partial"
	abs, err := filepath.Abs(tmp)
	if err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-v", "-o", abs, pkg)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	p := newProgress(w, title, total, time.Now)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("build %s: run go: %w", pkg, err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		p.line(sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("go build %s in %s: %w: %s", pkg, dir, err, strings.Join(p.tail, "; "))
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	fmt.Fprintf(w, "  built %s in %s (%s)\n", out, time.Since(p.start).Round(time.Second), p.summary())
	return nil
}

// progress reads go build -v's stderr, which names each package as it is
// compiled, and prints the count against the total every 5 % or, in a
// slow stretch (downloads, linking), every 10 s.
type progress struct {
	w            io.Writer
	title        string
	total        int // 0: unknown
	now          func() time.Time
	start, last  time.Time
	done         int // packages compiled
	modules      int // modules downloaded
	shownPercent int
	tail         []string // go's last other lines, for the error
}

func newProgress(w io.Writer, title string, total int, now func() time.Time) *progress {
	t := now()
	return &progress{w: w, title: title, total: total, now: now, start: t, last: t}
}

func (p *progress) line(s string) {
	switch {
	case strings.HasPrefix(s, "go: downloading "):
		p.modules++
	case s != "" && !strings.ContainsAny(s, " :\t"):
		p.done++ // an import path: -v names each package as it is compiled
	default:
		p.tail = append(p.tail[max(0, len(p.tail)-9):], s)
	}
	now := p.now()
	percent := 0
	if p.total > 0 {
		percent = min(100, p.done*100/p.total)
	}
	if percent < p.shownPercent+5 && now.Sub(p.last) < 10*time.Second {
		return
	}
	p.last = now
	if percent >= p.shownPercent+5 {
		p.shownPercent = percent - percent%5
	}
	took := now.Sub(p.start).Round(time.Second)
	switch {
	case p.done == 0 && p.modules > 0:
		fmt.Fprintf(p.w, "  building %s: downloading modules (%d so far), %s\n", p.title, p.modules, took)
	case p.total > 0:
		fmt.Fprintf(p.w, "  building %s: %d/%d packages (%d%%), %s\n", p.title, p.done, p.total, percent, took)
	default:
		fmt.Fprintf(p.w, "  building %s: %d packages, %s\n", p.title, p.done, took)
	}
}

// summary says how much was compiled, for the last line.
func (p *progress) summary() string {
	switch {
	case p.done == 0:
		return "from Go's build cache"
	case p.total > 0:
		return fmt.Sprintf("%d of %d packages compiled, the rest from Go's build cache", p.done, p.total)
	default:
		return fmt.Sprintf("%d packages compiled", p.done)
	}
}

// child is a server the dev cluster runs as a child process.
type child struct {
	cmd  *exec.Cmd
	done chan error // receives Wait's result once
}

// startChild starts argv with its output written to logFile.
func startChild(logFile string, argv ...string) (*child, error) {
	log, err := os.Create(logFile)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", filepath.Base(argv[0]), err)
	}
	defer func() { _ = log.Close() }() // the child has its own descriptor; ours is never written
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(argv[0]), err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }() // owned by Stop, which receives it
	return c, nil
}

// await polls ready every 100 ms until it reports true, the child exits,
// a minute passes or ctx ends; what names the server in errors.
func (c *child) await(ctx context.Context, what, logFile string, ready func() bool) error {
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !ready() {
		select {
		case err := <-c.done:
			c.done <- err // for Stop
			return fmt.Errorf("%s exited (%w); see %s", what, err, logFile)
		case <-deadline.C:
			return fmt.Errorf("%s not ready within a minute; see %s", what, logFile)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// AgentNode is the dev agent's Consul node name. It serves every simulated
// node, so the cluster's clients name it a shared agent node
// (registry.WithSharedAgentNodes); so must other commands run against the
// cluster (PATCHBAY_SHARED_AGENT_NODES=patchbay-dev).
const AgentNode = "patchbay-dev"

// startConsul starts a dev agent serving HTTP on httpAddr, with its other
// ports picked free (DNS and gRPC off), logging to logFile. It returns
// once the agent has elected itself leader.
func startConsul(ctx context.Context, bin, httpAddr, logFile string) (*child, error) {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return nil, fmt.Errorf("consul-addr %q: %w; give host:port", httpAddr, err)
	}
	if err := portFree(httpAddr); err != nil {
		return nil, fmt.Errorf("%w: consul-addr %s is taken (another Consul agent?): stop it, or run patchbay dev --consul-addr 127.0.0.1:18500 and give the other commands the same flag", ErrInUse, httpAddr)
	}
	serf, err := freePort(host)
	if err != nil {
		return nil, err
	}
	server, err := freePort(host)
	if err != nil {
		return nil, err
	}
	ports := fmt.Sprintf("ports { http = %s, dns = -1, grpc = -1, grpc_tls = -1, serf_lan = %d, serf_wan = -1, server = %d }", port, serf, server)
	a, err := startChild(logFile, bin, "agent", "-dev", "-node", AgentNode, "-bind", host, "-client", host, "-log-level", "warn", "-hcl", ports)
	if err != nil {
		return nil, err
	}
	client, err := api.NewClient(&api.Config{Address: httpAddr})
	if err != nil {
		a.Stop()
		return nil, fmt.Errorf("consul client: %w", err)
	}
	leads := func() bool {
		leader, err := client.Status().Leader()
		return err == nil && leader != ""
	}
	if err := a.await(ctx, "consul agent at "+httpAddr, logFile, leads); err != nil {
		a.Stop()
		return nil, err
	}
	return a, nil
}

// Stop asks the child to end (SIGINT: Consul leaves, NATS shuts down) and
// waits for it, killing it if it takes more than ten seconds.
func (c *child) Stop() {
	_ = c.cmd.Process.Signal(os.Interrupt)
	var err error
	select {
	case err = <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		err = <-c.done
	}
	_ = err // the child was asked to end: how it ended (a signal's exit status) says nothing
}

// portFree reports an error when something already listens on addr.
func portFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort() (int, error) { return freePort("127.0.0.1") }

// freePort asks the kernel for a free TCP port on host.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a free port on %s: %w", host, err)
	}
	defer func() { _ = l.Close() }() // only held to learn a free port
	return l.Addr().(*net.TCPAddr).Port, nil
}

// hostPort parses the host and port of a URL's authority or host:port.
func hostPort(s string) (string, int, error) {
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	s, _, _ = strings.Cut(s, ",")
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return host, port, err
}
