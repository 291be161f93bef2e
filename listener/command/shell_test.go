package command

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestAllowCheckCommand(t *testing.T) {
	staged := "/etc/nginx/.nginx.conf.patchbay-123"
	allow := AllowConfig{Commands: []CommandPattern{{"cat", "*"}, {"test", "-s", "--file={STAGED}"}}}
	tests := []struct {
		name   string
		staged string
		argv   []string
		want   bool
	}{
		{"default check on the staged path", staged, []string{"nginx", "-t", "-q", "-c", staged}, true},
		{"default check on another path", staged, []string{"nginx", "-t", "-q", "-c", "/etc/shadow"}, false},
		{"default check, not a check", "", []string{"nginx", "-t", "-q", "-c", staged}, false},
		{"staged inside a word", staged, []string{"test", "-s", "--file=" + staged}, true},
		{"staged path then more", staged, []string{"nginx", "-t", "-q", "-c", staged + "/../../shadow"}, false},
		{"a glob character in the staged path is itself", "/etc/x*/.f.patchbay-1", []string{"nginx", "-t", "-c", "/etc/xy/.f.patchbay-1"}, false},
		{"* stops at /", staged, []string{"cat", staged}, false},
		{"* matches a word", staged, []string{"cat", "secret"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := allow.CheckCommand("app-www", tt.staged, tt.argv); got != tt.want {
				t.Errorf("command(staged %q, %q) = %v, want %v", tt.staged, tt.argv, got, tt.want)
			}
		})
	}
}

func TestShellGlob(t *testing.T) {
	tests := []struct {
		pattern CommandPattern
		unsafe  bool
		safer   string // "" when there is no safer form to suggest
	}{
		{CommandPattern{"sh", "-c", "echo api: *"}, true, `[sh, -c, 'echo api: "$1"', sh, "*"]`},
		{CommandPattern{"/bin/bash", "-ec", "systemctl reload app-*"}, true, `[/bin/bash, -ec, 'systemctl reload "$1"', bash, "app-*"]`},
		{CommandPattern{"env", "LC_ALL=C", "sh", "-c", "ls ?"}, true, `[env, LC_ALL=C, sh, -c, 'ls "$1"', sh, "?"]`},
		{CommandPattern{"busybox", "sh", "-o", "errexit", "-c", "cat [ab]"}, true, `[busybox, sh, -o, errexit, -c, 'cat "$1"', sh, "[ab]"]`},
		{CommandPattern{"sh", "-c", "*"}, true, ""},
		{CommandPattern{"sh", "**"}, true, ""},
		{CommandPattern{"sh", "-c", `echo "api: $1"`, "sh", "*"}, false, ""},
		{CommandPattern{"sh", "-c", `echo \*`}, false, ""},
		{CommandPattern{"sh", "/opt/scripts/*.sh"}, false, ""},
		{CommandPattern{"chef-solo", "-o", "**"}, false, ""},
		{CommandPattern{"nginx", "-s", "reload"}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.pattern.Flow(), func(t *testing.T) {
			unsafe, safer := ShellGlob(tt.pattern)
			got := ""
			if safer != nil {
				got = safer.Flow()
			}
			if unsafe != tt.unsafe || got != tt.safer {
				t.Errorf("ShellGlob = %v, %s; want %v, %s", unsafe, got, tt.unsafe, tt.safer)
			}
			if safer != nil { // the safer form reads back as itself
				var back CommandPattern
				if err := yaml.Unmarshal([]byte(got), &back); err != nil || back.Flow() != got {
					t.Errorf("%s reads back as %q (%v)", got, back, err)
				}
			}
		})
	}
}
