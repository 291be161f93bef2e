package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is one program of the topology, run in a machine's namespace in its
// own process group, so that a kill reaches its children too (a template
// check in flight). Pdeathsig kills it if the test process dies.
type proc struct {
	name string
	ns   string
	argv []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once the current cmd has been waited for
}

func newProc(name, machine, logPath string, argv ...string) *proc {
	return &proc{name: name, ns: nsPrefix + machine, argv: argv, log: logPath}
}

// start runs the program; its output is appended to its log, so a restart
// keeps the history of the previous runs.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("chaos: %s already running", p.name)
		}
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chaos: log of %s: %w", p.name, err)
	}
	fmt.Fprintf(logf, "==== chaos: start %s at %s\n", p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.ns}, p.argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("chaos: start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { // owned by p: every stop and kill waits for done
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the whole group and waits for the program's end.
func (p *proc) kill() error { return p.signalAndWait(syscall.SIGKILL, 10*time.Second) }

// stop asks the program to stop (SIGTERM) and kills it after grace.
func (p *proc) stop(grace time.Duration) error {
	if err := p.signalAndWait(syscall.SIGTERM, grace); err == nil || !p.running() {
		return nil
	}
	return p.kill()
}

var errStillRunning = errors.New("chaos: still running")

func (p *proc) signalAndWait(sig syscall.Signal, wait time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("%w: %s %s after %s", errStillRunning, p.name, sig, wait)
	}
}
