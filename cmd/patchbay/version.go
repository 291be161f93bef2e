package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
// Without it, the version comes from the build info (see versionOf).
var version = "dev"

type versionInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Modified  bool   `json:"modified,omitempty"` // built from a work tree with uncommitted changes
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

func newVersionCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of patchbay",
		Long: `Version prints the version patchbay was built as: the one given with
-ldflags "-X main.version=...", else the module version Go recorded (a tag
with go install ...@v1.2.3, a pseudo-version for a source build), and the
VCS revision it was built from (with "+modified" for uncommitted changes).`,
		Args: namedArgs(),
		RunE: func(*cobra.Command, []string) error {
			bi, _ := debug.ReadBuildInfo()
			info := versionOf(version, bi)
			if asJSON {
				return a.printJSON(info)
			}
			_, err := fmt.Fprintln(a.stdout, info.String())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// versionOf is what version prints: linked, the -X main.version value
// ("dev" when none was given), and bi, the build info (nil when the binary
// has none).
func versionOf(linked string, bi *debug.BuildInfo) versionInfo {
	info := versionInfo{Version: linked, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		return info
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	if info.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version // a tag, or the pseudo-version Go stamps on a source build
	}
	return info
}

// String is the one line version prints:
// "patchbay v1.2.3 (revision 3fc7623abcde, go1.26.8, linux/amd64)".
func (v versionInfo) String() string {
	parts := []string{v.GoVersion, v.Platform}
	if v.Revision != "" {
		rev := v.Revision[:min(12, len(v.Revision))]
		if v.Modified {
			rev += "+modified"
		}
		parts = append([]string{"revision " + rev}, parts...)
	}
	return fmt.Sprintf("patchbay %s (%s)", v.Version, strings.Join(parts, ", "))
}
