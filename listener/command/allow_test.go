package command

import (
	"testing"
)

func TestAllowCommand(t *testing.T) {
	off := false
	listed := AllowConfig{Commands: []CommandPattern{{"chef-solo", "-o", "**"}, {"sh", "-c", "echo *"}, {"/opt/bin/deploy-*"}}}
	tests := []struct {
		name  string
		allow AllowConfig
		argv  []string
		want  bool
	}{
		{"{STAGED} only matches a staged path", AllowConfig{}, []string{"nginx", "-t", "-q", "-c", "{STAGED}"}, false},
		{"default own unit", AllowConfig{}, []string{"systemctl", "restart", "app-www"}, true},
		{"default other unit", AllowConfig{}, []string{"systemctl", "restart", "sshd"}, false},
		{"default stop", AllowConfig{}, []string{"systemctl", "stop", "app-www"}, false},
		{"default shell", AllowConfig{}, []string{"sh", "-c", "echo hi"}, false},
		{"extra argument", AllowConfig{}, []string{"nginx", "-s", "reload", "now"}, false},
		{"rest matches more", listed, []string{"chef-solo", "-o", "a", "b"}, true},
		{"rest matches none", listed, []string{"chef-solo", "-o"}, true},
		{"word glob", listed, []string{"sh", "-c", "echo hi there"}, true},
		{"word glob stops at /", listed, []string{"sh", "-c", "echo x > /etc/passwd"}, false},
		{"program glob", listed, []string{"/opt/bin/deploy-app"}, true},
		{"defaults still on", listed, []string{"nginx", "-s", "reload"}, true},
		{"defaults off", AllowConfig{Commands: listed.Commands, Defaults: &off}, []string{"nginx", "-s", "reload"}, false},
		{"everything", AllowConfig{Commands: []CommandPattern{{"**"}}}, []string{"rm", "-rf", "/"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.allow.Command("app-www", tt.argv); got != tt.want {
				t.Errorf("Command(%q) = %v, want %v", tt.argv, got, tt.want)
			}
		})
	}
}

func TestAllowSource(t *testing.T) {
	allow := AllowConfig{Sources: []string{"/srv/tpl/*.tmpl", "/opt/app/**"}}
	tests := []struct {
		path string
		want bool
	}{
		{"/etc/patchbay/templates/nginx.conf", true}, // the default
		{"/etc/patchbay/templates/a/b.tmpl", true},
		{"/etc/patchbay/templates", false},
		{"/etc/patchbay/templates/../../shadow", false},
		{"/etc/shadow", false},
		{"/srv/tpl/x.tmpl", true},
		{"/srv/tpl/sub/x.tmpl", false},
		{"/opt/app/deep/er/t", true},
		{"relative/t", false},
	}
	for _, tt := range tests {
		if got := allow.Source(tt.path); got != tt.want {
			t.Errorf("Source(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
