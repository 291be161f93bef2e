package testcluster

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// RequirePrograms makes sure programs such as nginx and haproxy are on
// PATH and returns their paths. In CI (CI=true) a missing one fails the
// test, which `make test` prevents by installing them; elsewhere the test
// is skipped with the command that installs them.
func RequirePrograms(t testing.TB, names ...string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	for _, name := range names {
		p, err := exec.LookPath(name)
		if err != nil {
			msg := fmt.Sprintf("%s is not installed; install it with `sudo apt-get install -y %s`, or run `sudo CI=true make test`, which does", name, name)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		paths[name] = p
	}
	return paths
}
