package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// version names what a binary was built from: the linked version, else
// the module version Go recorded, and the VCS revision either way.
func TestVersionOf(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "3fc7623abcdef0123456789abcdef0123456789a"
	tests := []struct {
		name   string
		linked string
		bi     *debug.BuildInfo
		want   string
	}{
		{"no build info", "dev", nil, "patchbay dev (" + runtime.Version() + ", linux/amd64)"},
		{"go test", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "patchbay dev (go1.26.8, linux/amd64)"},
		{"source build", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261206084451-3fc7623abcde"}, Settings: vcs(rev, "false")},
			"patchbay v0.0.0-20261206084451-3fc7623abcde (revision 3fc7623abcde, go1.26.8, linux/amd64)"},
		{"source build with changes", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261206084451-3fc7623abcde+dirty"}, Settings: vcs(rev, "true")},
			"patchbay v0.0.0-20261206084451-3fc7623abcde+dirty (revision 3fc7623abcde+modified, go1.26.8, linux/amd64)"},
		{"revision without a module version", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "false")},
			"patchbay dev (revision 3fc7623abcde, go1.26.8, linux/amd64)"},
		{"go install at a tag", "dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}}, "patchbay v1.4.0 (go1.26.8, linux/amd64)"},
		{"-ldflags wins", "v1.5.0", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}, Settings: vcs(rev, "false")},
			"patchbay v1.5.0 (revision 3fc7623abcde, go1.26.8, linux/amd64)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := versionOf(tt.linked, tt.bi)
			v.Platform = "linux/amd64" // the host's; not what is tested
			if got := v.String(); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
