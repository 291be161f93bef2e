package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The cost of one change on one host: the CPU time and context switches
// each consumer process spent between a change and its file holding it,
// read from /proc for every thread (what getrusage would say of the
// process), for both fleets in the same run.

// procUsage is what one consumer process had used at one moment.
type procUsage struct {
	cpu      time.Duration
	switches int64 // voluntary and involuntary, every thread
}

func fleetUsage(f *fleet) ([]procUsage, error) {
	us := make([]procUsage, len(f.procs))
	for i, p := range f.procs {
		u, err := threadsUsage(p.pid())
		if err != nil {
			return nil, err
		}
		us[i] = u
	}
	return us, nil
}

// perConsumer sets fig's mean CPU milliseconds and context switches per
// consumer from before to now.
func perConsumer(fig *Figures, f *fleet, before []procUsage) error {
	now, err := fleetUsage(f)
	if err != nil || len(now) == 0 || len(now) != len(before) {
		return err
	}
	var cpu, sw []float64
	for i := range now {
		cpu = append(cpu, float64(now[i].cpu-before[i].cpu)/float64(time.Millisecond))
		sw = append(sw, float64(now[i].switches-before[i].switches))
	}
	fig.CPUMsPerConsumer, fig.SwitchesPerConsumer = Mean(cpu), Mean(sw)
	return nil
}

// threadsUsage sums, over every thread of pid, the time on a CPU in
// nanoseconds (/proc/PID/task/*/schedstat: /proc/PID/stat counts 10 ms
// ticks, coarser than a change costs) and the context switches.
func threadsUsage(pid int) (procUsage, error) {
	var u procUsage
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		return u, fmt.Errorf("bench: threads of %d: %v", pid, err)
	}
	for _, t := range tasks {
		sched, err := os.ReadFile(filepath.Join(t, "schedstat"))
		if err != nil {
			continue // a thread that ended meanwhile
		}
		f := bytes.Fields(sched)
		if len(f) == 0 {
			return u, fmt.Errorf("bench: %s/schedstat: empty", t)
		}
		ns, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return u, fmt.Errorf("bench: %s/schedstat: %w", t, err)
		}
		u.cpu += time.Duration(ns)
		sw, err := switchesOf(filepath.Join(t, "status"))
		if err != nil {
			return u, err
		}
		u.switches += sw
	}
	return u, nil
}

// switchesOf reads a thread's voluntary and involuntary context switches.
func switchesOf(status string) (int64, error) {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0, nil // a thread that ended meanwhile
	}
	var sum int64
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		for _, p := range [][]byte{[]byte("voluntary_ctxt_switches:"), []byte("nonvoluntary_ctxt_switches:")} {
			if v, ok := bytes.CutPrefix(s.Bytes(), p); ok {
				n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("bench: %s: %w", status, err)
				}
				sum += n
			}
		}
	}
	return sum, nil
}
