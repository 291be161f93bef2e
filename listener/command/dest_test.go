package command

import (
	"testing"
)

func TestAllowDestination(t *testing.T) {
	off := false
	listed := AllowConfig{Destinations: []string{"/srv/{SERVICE}/*.conf", "/opt/app/**"}}
	tests := []struct {
		name    string
		allow   AllowConfig
		service string
		source  string
		dest    string
		want    bool
	}{
		{"own directory", AllowConfig{}, "app-www", "builtin:env", "/etc/app-www/env", true},
		{"own directory, inline", AllowConfig{}, "app-www", "", "/etc/app-www/conf.d/x.conf", true},
		{"own directory itself", AllowConfig{}, "app-www", "", "/etc/app-www", false},
		{"another service's directory", AllowConfig{}, "app-www", "", "/etc/app-api/env", false},
		{"cron", AllowConfig{}, "sdef", "", "/etc/cron.d/sdef", false},
		{"systemd unit", AllowConfig{}, "sdef", "", "/etc/systemd/system/sdef.service", false},
		{"a service named systemd", AllowConfig{}, "systemd", "", "/etc/systemd/system/x.service", false},
		{"a service named ssh", AllowConfig{}, "ssh", "builtin:env", "/etc/ssh/sshd_config", false},
		{"profile script", AllowConfig{}, "sdef", "", "/etc/profile.d/sdef.sh", false},
		{"sudoers", AllowConfig{}, "sdef", "", "/etc/sudoers.d/sdef", false},
		{"root's keys", AllowConfig{}, "sdef", "", "/root/.ssh/authorized_keys", false},
		{"dot-dot", AllowConfig{}, "app-www", "", "/etc/app-www/../cron.d/x", false},
		{"dot-dot above /", AllowConfig{Destinations: []string{"/**"}}, "app-www", "", "/../../srv/escaped", false},
		{"relative", AllowConfig{Destinations: []string{"/**"}}, "app-www", "", "etc/app-www/env", false},
		{"nginx builtin", AllowConfig{}, "lb-public", "builtin:nginx", "/etc/nginx/nginx.conf", true},
		{"haproxy builtin", AllowConfig{}, "lb-public", "builtin:haproxy", "/etc/haproxy/haproxy.cfg", true},
		{"nginx path, inline contents", AllowConfig{}, "lb-public", "", "/etc/nginx/nginx.conf", false},
		{"nginx path, env builtin", AllowConfig{}, "lb-public", "builtin:env", "/etc/nginx/conf.d/x.conf", false},
		{"haproxy path, nginx builtin", AllowConfig{}, "lb-public", "builtin:nginx", "/etc/haproxy/haproxy.cfg", false},
		{"listed with service", listed, "api", "", "/srv/api/main.conf", true},
		{"listed, other service", listed, "web", "", "/srv/api/main.conf", false},
		{"listed, glob stops at /", listed, "api", "", "/srv/api/sub/main.conf", false},
		{"listed tree", listed, "api", "", "/opt/app/a/b", true},
		{"defaults still on", listed, "api", "", "/etc/api/env", true},
		{"defaults off", AllowConfig{Destinations: listed.Destinations, Defaults: &off}, "api", "", "/etc/api/env", false},
		{"defaults off, builtin", AllowConfig{Defaults: &off}, "lb", "builtin:nginx", "/etc/nginx/nginx.conf", false},
		{"everything", AllowConfig{Destinations: []string{"/**"}}, "sdef", "", "/etc/cron.d/sdef", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.allow.Destination(tt.service, tt.source, tt.dest); got != tt.want {
				t.Errorf("Destination(%q, %q, %q) = %v, want %v", tt.service, tt.source, tt.dest, got, tt.want)
			}
		})
	}
}
