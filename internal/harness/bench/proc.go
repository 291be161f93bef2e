package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process in its own process group, killed if the harness
// dies (Pdeathsig), so that nothing outlives a run.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed once Wait has returned
	err  error         // of Wait, set before done closes
}

// startProc starts argv with env added to a clean environment (no
// CONSUL_* or VAULT_* of the caller's), in dir, its output in logPath.
func startProc(name, dir, logPath string, env []string, argv ...string) (*proc, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
	cmd.Env = append(cleanEnv(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = log.Close() // the start error is the one to report
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { // owned by p: stop waits for it
		p.err = cmd.Wait()
		_ = log.Close() // the child wrote through its own descriptor; ours was never written
		close(p.done)
	}()
	return p, nil
}

// cleanEnv is the harness's environment without the variables that would
// point a child at another Consul, Vault or NATS.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CONSUL_") || strings.HasPrefix(kv, "VAULT_") ||
			strings.HasPrefix(kv, "NOMAD_") || strings.HasPrefix(kv, "PATCHBAY_") || strings.HasPrefix(kv, "NATS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// signal sends sig to the process; one that has exited has nothing to
// pause or resume.
func (p *proc) signal(sig os.Signal) { _ = p.cmd.Process.Signal(sig) }

// exited reports whether the process has ended, with its error.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGINT to the process group, and SIGKILL after grace; it
// reports whether SIGKILL was needed. SIGINT, not SIGTERM: consul-template
// exits on its kill_signal, SIGINT by default, and patchbay and Consul
// stop cleanly on either.
func (p *proc) stop(grace time.Duration) (killed bool) {
	if ok, _ := p.exited(); ok {
		return false
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGINT)
	select {
	case <-p.done:
		return false
	case <-time.After(grace):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
		return true
	}
}

// stopAll stops procs in parallel: a fleet of 100 stops in one grace
// period, not 100. It returns how many needed SIGKILL.
func stopAll(procs []*proc, grace time.Duration) (killed int) {
	done := make(chan bool, len(procs))
	for _, p := range procs {
		go func() { // waited for below
			done <- p.stop(grace)
		}()
	}
	for range procs {
		if <-done {
			killed++
		}
	}
	return killed
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// cpuTime is the user plus system CPU time pid has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: cpu of %d: %w", pid, err)
	}
	return parseCPU(b)
}

// parseCPU reads utime and stime (fields 14 and 15) of a /proc/<pid>/stat
// line; the command name, field 2, may hold spaces, so fields are counted
// after its closing parenthesis.
func parseCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("bench: /proc stat without a command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("bench: /proc stat too short")
	}
	var ticks int64
	for _, s := range f[11:13] { // fields 14 and 15; f[0] is field 3
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// rssBytes is the resident set size of pid (VmRSS).
func rssBytes(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: rss of %d: %w", pid, err)
	}
	defer func() { _ = f.Close() }() // read-only
	s := bufio.NewScanner(f)
	for s.Scan() {
		rest, ok := strings.CutPrefix(s.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: rss of %d: %w", pid, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("bench: rss of %d: no VmRSS", pid)
}

// fleetCPU is the CPU time used by procs together.
func fleetCPU(procs []*proc) (time.Duration, error) {
	var sum time.Duration
	for _, p := range procs {
		d, err := cpuTime(p.pid())
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}
