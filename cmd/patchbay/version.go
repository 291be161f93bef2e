package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

type versionInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

func newVersionCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of patchbay",
		Args:  namedArgs(),
		RunE: func(*cobra.Command, []string) error {
			info := versionInfo{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						info.Revision = s.Value
					}
				}
				if info.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
					info.Version = bi.Main.Version // installed with go install module@version
				}
			}
			if asJSON {
				return a.printJSON(info)
			}
			_, err := fmt.Fprintf(a.stdout, "patchbay %s (%s, %s)\n", info.Version, info.GoVersion, info.Platform)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
