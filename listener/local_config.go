package listener

import (
	"cmp"
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

// localLB checks local_lb; defaults are filled where it is used
// (Config.localLB), so that a config reads back as written.
func (l *configLoader) localLB(c *Config) {
	lb := c.LocalLB
	for _, f := range []struct{ key, path string }{{"config", lb.Config}, {"socket", lb.Socket}} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			l.report(l.line("local_lb", f.key), "local_lb.%s: %q is not an absolute path; give where the listener keeps the local HAProxy's %s, like %s", f.key, f.path, f.key, filepath.Join(DefaultStateDir, "local-haproxy."+map[string]string{"config": "cfg", "socket": "sock"}[f.key]))
		}
	}
	if lb.CheckInter != 0 && time.Duration(lb.CheckInter) < 100*time.Millisecond {
		l.report(l.line("local_lb", "check_inter"), "local_lb.check_inter: %s is shorter than 100ms; give 100ms or more (default %s)", lb.CheckInter, DefaultLocalLBCheckInter)
	}
}

// localLB is local_lb with its defaults filled in.
func (c *Config) localLB() LocalLBConfig {
	lb := c.LocalLB
	lb.Program = cmp.Or(lb.Program, DefaultLocalLBProgram)
	lb.Config = cmp.Or(lb.Config, filepath.Join(c.StateDir, "local-haproxy.cfg"))
	lb.Socket = cmp.Or(lb.Socket, filepath.Join(c.StateDir, "local-haproxy.sock"))
	lb.CheckInter = cmp.Or(lb.CheckInter, manifest.Duration(DefaultLocalLBCheckInter))
	lb.Drain = cmp.Or(lb.Drain, manifest.Duration(DefaultLocalLBDrain))
	return lb
}
