package listener

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/patchbay/patchbay/manifest"
)

// DefaultAllowDestinations are where any template of a service may be
// installed: the service's own directory under /etc, unless its id names
// a directory of the system (systemDirs).
var DefaultAllowDestinations = []string{"/etc/" + allowServicePlaceholder + "/**"}

// DefaultAllowBuiltinDestinations are where a template of a builtin may be
// installed besides: the load balancers' configuration, only for the
// builtin that renders it (not for inline contents or a source file).
var DefaultAllowBuiltinDestinations = map[string][]string{
	"nginx":   {"/etc/nginx/**"},
	"haproxy": {"/etc/haproxy/**"},
}

// systemDirs are directories of /etc where a file runs code as root, or
// decides who logs in or what is trusted: the default /etc/{SERVICE}/**
// never covers them, so that a service named "systemd" or "ssh" cannot
// install units or keys. allow.destinations may still name them.
var systemDirs = []string{
	"alternatives", "apparmor", "apt", "audit", "ca-certificates", "containerd", "cron", "crontab",
	"dbus-1", "default", "dhcp", "dnf", "docker", "environment", "firewalld", "grub", "init", "initramfs-tools",
	"kernel", "kubernetes", "ld", "logrotate", "lvm", "modprobe", "modules", "network", "networkd-dispatcher",
	"nftables", "pam", "pki", "polkit-1", "ppp", "profile", "rc", "security", "selinux", "skel", "ssh", "ssl",
	"sudo", "sudoers", "sysconfig", "sysctl", "systemd", "tmpfiles", "udev", "update-motd", "xdg", "yum",
}

// Destination reports whether a template of service from source may be
// installed at dest (an absolute, clean path, before root is prefixed;
// anything else is refused).
func (a AllowConfig) Destination(service, source, dest string) bool {
	if !path.IsAbs(dest) || path.Clean(dest) != dest {
		return false
	}
	match := func(glob string) bool {
		return sourceMatches(strings.ReplaceAll(glob, allowServicePlaceholder, service), dest)
	}
	switch {
	case slices.ContainsFunc(a.Destinations, match):
		return true
	case !a.defaults():
		return false
	}
	if builtin, ok := strings.CutPrefix(source, manifest.BuiltinPrefix); ok && slices.ContainsFunc(DefaultAllowBuiltinDestinations[builtin], match) {
		return true
	}
	return !slices.Contains(systemDirs, service) && slices.ContainsFunc(DefaultAllowDestinations, match)
}

// destinationRefusals lists the destinations of p's templates that
// listener.yaml does not allow, each as "what it is: why".
func (a AllowConfig) destinationRefusals(p *plan) []string {
	var refused []string
	for _, name := range slices.Sorted(maps.Keys(p.m.Templates)) {
		t := p.m.Templates[name]
		switch {
		case t.Destination == "": // not installed; the render says so
		case path.Clean(t.Destination) != t.Destination || !path.IsAbs(t.Destination):
			refused = append(refused, fmt.Sprintf("destination of template %s %q is not a clean absolute path (no \"..\", \"//\" or trailing \"/\")", name, t.Destination))
		case !a.Destination(p.sc.Service, t.Source, t.Destination):
			refused = append(refused, fmt.Sprintf("destination of template %s %q is not in allow.destinations", name, t.Destination))
		}
	}
	return refused
}

// confinedRoot is the directory every destination is installed beneath.
func (c *Config) confinedRoot() string { return cmp.Or(c.Root, "/") }

// allowDestinations checks allow.destinations: absolute, clean globs.
func (l *configLoader) allowDestinations(a *AllowConfig) {
	for i, d := range a.Destinations {
		at := l.line("allow", "destinations", strconv.Itoa(i))
		dir := cmp.Or(strings.TrimSuffix(d, "/"+allowRest), "/")
		if !path.IsAbs(d) || path.Clean(dir) != dir {
			l.report(at, "allow.destinations: %q is not a clean absolute path; give a glob from /, like %q", d, DefaultAllowDestinations[0])
			continue
		}
		if _, err := path.Match(strings.ReplaceAll(dir, allowServicePlaceholder, "x"), ""); err != nil {
			l.report(at, "allow.destinations: %q is not a valid glob (%v)", d, err)
		}
	}
}
