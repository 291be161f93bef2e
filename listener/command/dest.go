package command

import (
	"path"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/manifest"
)

// DefaultAllowDestinations are where any template of a service may be
// installed: the service's own directory under /etc, unless its id names
// a directory of the system (systemDirs).
var DefaultAllowDestinations = []string{"/etc/" + ServicePlaceholder + "/**"}

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
		return sourceMatches(strings.ReplaceAll(glob, ServicePlaceholder, service), dest)
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
