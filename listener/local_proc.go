package listener

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/patchbay/patchbay/listener/balance"
)

// localLBReady bounds how long a start or reload may take before the
// runtime API answers from the new process.
const localLBReady = 10 * time.Second

// start installs content and runs HAProxy on it, in master-worker mode
// in the foreground (-W -db): SIGUSR2 reloads it keeping its sockets.
// The process is the listener's, not the run's: stop ends it.
func (lb *localLB) start(ctx context.Context, cfg *Config, content []byte) error {
	if err := lb.install(cfg, content); err != nil {
		return err
	}
	cmd := lb.command(context.WithoutCancel(ctx), cfg, "-W", "-db", "-f", cfg.LocalLB.Config)
	out, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLocalLB, err)
	}
	cmd.Stdout = cmd.Stderr
	ownByListener(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: start %s: %w; install HAProxy or set local_lb.program in %s", ErrLocalLB, cfg.LocalLB.Program, err, cfg.File)
	}
	exited := make(chan struct{})
	lb.proc, lb.exited = cmd, exited
	lb.stopping.Store(false)
	lb.waiter.Go(func() { lb.wait(cmd, out, exited) })
	lb.report.Starts++
	api := &balance.HAProxyAPI{Socket: cfg.LocalLB.Socket, Timeout: time.Second}
	if _, err := lb.untilPid(ctx, api, func(int) bool { return true }); err != nil {
		return err
	}
	lb.log.Info("local load balancer started", "config", cfg.LocalLB.Config, "pid", cmd.Process.Pid)
	return nil
}

// wait logs HAProxy's output and its end; an end nobody asked for queues
// a run, which starts it again.
func (lb *localLB) wait(cmd *exec.Cmd, out io.Reader, exited chan struct{}) {
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		lb.log.Info("haproxy", "line", sc.Text())
	}
	err := cmd.Wait()
	close(exited)
	if !lb.stopping.Load() {
		lb.log.Error("local load balancer exited; a run starts it again", "err", err)
		if lb.onExit != nil {
			lb.onExit()
		}
	}
}

// reload installs content and has the master start a new worker on it.
func (lb *localLB) reload(ctx context.Context, cfg *Config, api *balance.HAProxyAPI, content []byte) error {
	old, err := workerPid(ctx, api)
	if err != nil {
		return err
	}
	if err := lb.install(cfg, content); err != nil {
		return err
	}
	if err := lb.proc.Process.Signal(syscall.SIGUSR2); err != nil {
		return fmt.Errorf("%w: reload: %w", ErrLocalLB, err)
	}
	if _, err := lb.untilPid(ctx, api, func(pid int) bool { return pid != old }); err != nil {
		return err
	}
	lb.report.Reloads++
	lb.metrics.HAProxyApplied("reload")
	return nil
}

// untilPid polls the runtime API until its worker's pid satisfies ok,
// the process ends, or localLBReady passes.
func (lb *localLB) untilPid(ctx context.Context, api *balance.HAProxyAPI, ok func(int) bool) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, localLBReady)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		pid, err := workerPid(ctx, api)
		if err == nil && ok(pid) {
			return pid, nil
		}
		last = err
		select {
		case <-lb.exited:
			return 0, fmt.Errorf("%w: haproxy exited (see its log lines above)", ErrLocalLB)
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: the runtime API at %s did not answer within %s: %v", ErrLocalLB, api.Socket, localLBReady, last)
		case <-tick.C:
		}
	}
}

// workerPid is the pid "show info" reports: the worker answering.
func workerPid(ctx context.Context, api *balance.HAProxyAPI) (int, error) {
	out, err := api.Cmd(ctx, "show info")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(out, "\n") {
		if v, ok := strings.CutPrefix(line, "Pid: "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("%w: show info has no Pid line", ErrHAProxyAPI)
}

// localLBStop bounds a soft stop: requests in flight may finish.
const localLBStop = 5 * time.Second

// stop ends HAProxy, if it runs, and waits for it: the listener owns it.
// A soft stop (SIGUSR1) stops listening and lets requests in flight
// finish, for at most localLBStop.
func (lb *localLB) stop() {
	lb.mu.Lock()
	cmd, exited := lb.proc, lb.exited
	lb.mu.Unlock()
	if cmd == nil {
		return
	}
	lb.stopping.Store(true)
	_ = cmd.Process.Signal(syscall.SIGUSR1)
	timer := time.NewTimer(localLBStop)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		_ = cmd.Process.Kill()
	}
	lb.waiter.Wait()
}
