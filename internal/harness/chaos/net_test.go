package chaos

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The suite's network: a bridge in the root namespace and one namespace per
// machine, joined to it by a veth pair. The names and the /24 are the
// suite's own, so a crashed earlier run is recognised and cleared.
const (
	subnet   = "10.213.77"
	bridge   = "pbchaos0"
	nsPrefix = "pbc-"
	bridgeIP = subnet + ".1"
)

// sh runs a command to completion and returns an error with its output.
func sh(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func output(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// checkSubnetFree refuses to run when anything but the suite's own bridge
// routes the suite's /24: traffic must stay in namespaces it made.
func checkSubnetFree() error {
	routes, err := output("ip", "-4", "route", "show")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(routes, "\n") {
		if strings.Contains(line, subnet+".") && !strings.Contains(line, "dev "+bridge) {
			return fmt.Errorf("chaos: the suite's subnet %s.0/24 is already in use here (%q); nothing may share it", subnet, line)
		}
	}
	return nil
}

// removeNetwork kills what runs in the suite's namespaces (processes of this
// or a crashed earlier run: nothing else lives there), deletes them and the
// bridge. Errors are collected, not fatal: removal must go as far as it can.
func removeNetwork() error {
	var errs []string
	list, err := output("ip", "netns", "list")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(list, "\n") {
		ns, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasPrefix(ns, nsPrefix) {
			continue
		}
		killNamespace(ns)
		if err := sh("ip", "netns", "del", ns); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if _, err := output("ip", "link", "show", bridge); err == nil {
		if err := sh("ip", "link", "del", bridge); err != nil {
			errs = append(errs, err.Error())
		}
	}
	// A namespace the kernel has not finished tearing down can leave its
	// veth's root end behind for a while: delete it, which deletes both ends.
	links, err := output("ip", "-o", "link", "show")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(links, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(fields[1], ":"), "@")
		if !strings.HasPrefix(name, nsPrefix) {
			continue
		}
		if err := sh("ip", "link", "del", name); err != nil {
			if _, gone := output("ip", "link", "show", name); gone == nil {
				errs = append(errs, err.Error()) // still there: a real failure
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("chaos: remove network: %s", strings.Join(errs, "; "))
	}
	return nil
}

func killNamespace(ns string) {
	pids, _ := output("ip", "netns", "pids", ns)
	for _, f := range strings.Fields(pids) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func addBridge() error {
	for _, args := range [][]string{
		{"ip", "link", "add", bridge, "type", "bridge"},
		{"ip", "addr", "add", bridgeIP + "/24", "dev", bridge},
		{"ip", "link", "set", bridge, "up"},
	} {
		if err := sh(args...); err != nil {
			return err
		}
	}
	return nil
}

// addNamespace makes namespace pbc-NAME with address ip on its eth0, whose
// peer pbc-NAME is a port of the bridge. Taking that port down partitions
// the machine.
func addNamespace(name, ip string) error {
	ns := nsPrefix + name
	for _, args := range [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", ns, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "link", "set", ns, "master", bridge, "up"},
		{"ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
	} {
		if err := sh(args...); err != nil {
			return err
		}
	}
	return nil
}

// setLink takes a machine's bridge port down (a partition) or up.
func setLink(name string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return sh("ip", "link", "set", nsPrefix+name, state)
}

// blockPort drops, inside a namespace, TCP traffic to and from a port in
// both directions, so nothing already in flight reaches the machine either.
func blockPort(name string, port int, block bool) error {
	op := "-A"
	if !block {
		op = "-D"
	}
	p := strconv.Itoa(port)
	ns := nsPrefix + name
	if err := sh("ip", "netns", "exec", ns, "iptables", op, "OUTPUT", "-p", "tcp", "--dport", p, "-j", "DROP"); err != nil {
		return err
	}
	return sh("ip", "netns", "exec", ns, "iptables", op, "INPUT", "-p", "tcp", "--sport", p, "-j", "DROP")
}
