package dev

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Preflight checks everything a start can check before it changes
// anything, and reports every conflict in one error: a dev cluster already
// running in Dir (with its pid), and each address that is taken with the
// flag that moves it. It takes no lock; Run checks again and takes it. The
// cmd runs it before it starts the console, whose address it checks too.
func Preflight(cfg Config) error {
	problems, _ := conflicts(cfg)
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: cannot start patchbay dev:\n  - %s", ErrInUse, strings.Join(problems, "\n  - "))
}

// conflicts lists what stops a start, and the ports of nodes that are taken
// (not fatal: pickPorts moves those nodes to free ports).
func conflicts(cfg Config) (problems, moved []string) {
	if err := dirFree(cfg.Dir); err != nil { // first: a running cluster explains the taken addresses
		problems = append(problems, err.Error())
	}
	if _, _, err := net.SplitHostPort(cfg.ConsulAddr); err != nil {
		problems = append(problems, fmt.Sprintf("consul-addr %q: %v; give host:port", cfg.ConsulAddr, err))
	} else if portFree(cfg.ConsulAddr) != nil {
		problems = append(problems, fmt.Sprintf("consul-addr %s is taken (another patchbay dev or Consul agent?): stop it, or move this one with --consul-addr 127.0.0.1:18500 and give the other commands the same flag", cfg.ConsulAddr))
	}
	if host, port, err := hostPort(cfg.NATSURL); err != nil {
		problems = append(problems, fmt.Sprintf("nats-url %q: %v; give nats://host:port", cfg.NATSURL, err))
	} else if portFree(net.JoinHostPort(host, strconv.Itoa(port))) != nil {
		problems = append(problems, fmt.Sprintf("nats-url %s is taken (another patchbay dev or NATS server?): stop it, or move this one with --nats-url nats://127.0.0.1:14222 and give the other commands the same flag", cfg.NATSURL))
	}
	if cfg.Console != "" && portFree(cfg.Console) != nil {
		problems = append(problems, fmt.Sprintf("console %s is taken: move it with --http-addr 127.0.0.1:18700, or --http-addr \"\" for none", cfg.Console))
	}
	for _, n := range cfg.Nodes {
		if n.Control != "" && portFree(n.Control) != nil {
			moved = append(moved, fmt.Sprintf("%s's control %s is taken: that node uses a free port instead (the table shows it)", n.Name, n.Control))
		}
	}
	if len(problems) > 0 {
		problems = append(problems, moved...)
	}
	return problems, moved
}

// dirFree reports a Dir that another patchbay dev holds, naming its pid,
// or that patchbay dev did not make. It takes the lock only to test it.
func dirFree(dir string) error {
	if err := checkDirOurs(dir); err != nil {
		return errors.Unwrap(err) // the message without the sentinel: Preflight adds it once
	}
	f, err := os.Open(filepath.Join(dir, dirMarker))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--dir %s: %w", dir, err)
	}
	defer func() { _ = f.Close() }() // closing releases a lock taken here
	if err := lockFile(f); err != nil {
		return errors.New(runningDev(dir, f))
	}
	return nil
}

// runningDev says that a dev cluster runs with dir, with the pid its
// marker file records when there is one.
func runningDev(dir string, marker *os.File) string {
	pid := 0
	if data, err := os.ReadFile(marker.Name()); err == nil {
		for line := range strings.Lines(string(data)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "pid "); ok {
				pid, _ = strconv.Atoi(v)
			}
		}
	}
	if pid > 0 {
		return fmt.Sprintf("a dev cluster is already running: another patchbay dev runs with --dir %s (pid %d): use that one, stop it (Ctrl-C in its terminal, or kill %d), or give another --dir", dir, pid, pid)
	}
	return fmt.Sprintf("a dev cluster is already running: another patchbay dev runs with --dir %s: use that one, stop it, or give another --dir", dir)
}

// preflight runs the checks of Preflight but the console's (which cmd
// started already) and returns with Dir locked against another patchbay
// dev until unlock: a second patchbay dev, started while one runs, must
// fail without deleting the running one's files.
func preflight(cfg Config) (unlock func(), err error) {
	cfg.Console = ""
	problems, moved := conflicts(cfg)
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: cannot start patchbay dev:\n  - %s", ErrInUse, strings.Join(problems, "\n  - "))
	}
	for _, m := range moved {
		if cfg.Out != nil {
			fmt.Fprintln(cfg.Out, "note: "+m)
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(cfg.Dir, dirMarker), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	if err := lockFile(f); err != nil { // lost a race with another start since the check
		msg := runningDev(cfg.Dir, f)
		_ = f.Close() // only read for its lock
		return nil, fmt.Errorf("%w: %s", ErrInUse, msg)
	}
	return func() { _ = f.Close() }, nil // closing releases the lock
}
