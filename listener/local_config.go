package listener

import (
	"path/filepath"
	"time"

	"github.com/patchbay/patchbay/manifest"
)

// LocalLBConfig is the node's local load balancer: the HAProxy that
// serves via: local requirements on 127.0.0.1. Every path and the program
// come from here, never from a manifest or a binding (DESIGN §5a).
type LocalLBConfig struct {
	// Program is the HAProxy binary the listener runs in master-worker
	// mode; a bare name is looked up on the listener's PATH.
	Program string `yaml:"program"`
	// Config is where the rendered haproxy.cfg is installed.
	Config string `yaml:"config"`
	// Socket is HAProxy's runtime API socket (mode 0600).
	Socket string `yaml:"socket"`
	// PrivilegedPorts lets a manifest's local_port be below 1024.
	PrivilegedPorts bool `yaml:"privileged_ports"`
	// CheckInter is how often HAProxy checks each server.
	CheckInter manifest.Duration `yaml:"check_inter"`
	// Drain bounds the wait for a removed server's connections.
	Drain manifest.Duration `yaml:"drain"`
}

// Defaults of local_lb.
const (
	DefaultLocalLBProgram    = "haproxy"
	DefaultLocalLBCheckInter = time.Second
	DefaultLocalLBDrain      = 10 * time.Second
)

// localLB defaults and checks local_lb.
func (l *configLoader) localLB(c *Config) {
	lb := &c.LocalLB
	if lb.Program == "" {
		lb.Program = DefaultLocalLBProgram
	}
	if lb.Config == "" {
		lb.Config = filepath.Join(c.StateDir, "local-haproxy.cfg")
	}
	if lb.Socket == "" {
		lb.Socket = filepath.Join(c.StateDir, "local-haproxy.sock")
	}
	if lb.CheckInter == 0 {
		lb.CheckInter = manifest.Duration(DefaultLocalLBCheckInter)
	}
	if lb.Drain == 0 {
		lb.Drain = manifest.Duration(DefaultLocalLBDrain)
	}
	for _, f := range []struct{ key, path string }{{"config", lb.Config}, {"socket", lb.Socket}} {
		if !filepath.IsAbs(f.path) {
			l.report(l.line("local_lb", f.key), "local_lb.%s: %q is not an absolute path; give where the listener keeps the local HAProxy's %s, like /var/lib/patchbay/local-haproxy.cfg", f.key, f.path, f.key)
		}
	}
	if time.Duration(lb.CheckInter) < 100*time.Millisecond {
		l.report(l.line("local_lb", "check_inter"), "local_lb.check_inter: %s is shorter than 100ms; give 100ms or more (default %s)", lb.CheckInter, DefaultLocalLBCheckInter)
	}
}
