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
// read from /proc (what getrusage would say of the process, threads
// summed), for both fleets in the same run.

// procUsage is what one consumer process had used at one moment.
type procUsage struct {
	cpu      time.Duration
	switches int64 // voluntary and involuntary, every thread
}

func fleetUsage(f *fleet) ([]procUsage, error) {
	us := make([]procUsage, len(f.procs))
	for i, p := range f.procs {
		cpu, err := cpuTime(p.pid())
		if err != nil {
			return nil, err
		}
		sw, err := contextSwitches(p.pid())
		if err != nil {
			return nil, err
		}
		us[i] = procUsage{cpu, sw}
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

// contextSwitches sums the context switches of every thread of pid.
func contextSwitches(pid int) (int64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("bench: threads of %d: %v", pid, err)
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that ended meanwhile
		}
		s := bufio.NewScanner(bytes.NewReader(b))
		for s.Scan() {
			line := s.Bytes()
			for _, p := range [][]byte{[]byte("voluntary_ctxt_switches:"), []byte("nonvoluntary_ctxt_switches:")} {
				if v, ok := bytes.CutPrefix(line, p); ok {
					n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
					if err != nil {
						return 0, fmt.Errorf("bench: %s: %w", t, err)
					}
					sum += n
				}
			}
		}
	}
	return sum, nil
}
