package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// waitFor polls get until ok accepts what it returns, for up to 15 s.
func waitFor(t *testing.T, what string, get func() (string, error), ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		body, err := get()
		if err == nil && ok(body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s: %q, %v", what, body, err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// A real console started with the old --addr serves on that address, and
// says on stderr that the flag is now --http-addr.
func TestConsoleDeprecatedAddr(t *testing.T) {
	consul := testcluster.StartConsul(t)
	natsSrv := testcluster.StartNATS(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	d := startDaemon(t, "console", "--consul-addr="+consul.Addr, "--nats-url", natsSrv.URL, "--addr", addr)
	waitFor(t, "the console at "+addr, func() (string, error) { return httpGet("http://" + addr + "/") },
		func(body string) bool { return strings.Contains(body, "<html") || strings.Contains(body, "<!doctype") })
	if want := "--addr is deprecated and will be removed; use --http-addr"; !strings.Contains(d.stderr.String(), want) {
		t.Errorf("stderr %q lacks %q", d.stderr.String(), want)
	}
	if strings.Contains(d.stdout.String(), "deprecated") {
		t.Errorf("the deprecation went to stdout: %q", d.stdout.String())
	}
}

// A real resolver takes --http-addr from the resolver: section of its
// --config file.
func TestResolverHTTPAddrFromConfig(t *testing.T) {
	consul := testcluster.StartConsul(t)
	natsSrv := testcluster.StartNATS(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	config := filepath.Join(t.TempDir(), "patchbay.yaml")
	body := "consul-addr: " + consul.Addr + "\nnats-url: " + natsSrv.URL + "\nresolver:\n  http-addr: " + addr + "\n  name: from-file\n"
	if err := os.WriteFile(config, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	startPatchbay(t, "resolver", "--config", config)
	waitFor(t, "the resolver's /healthz at "+addr, func() (string, error) { return httpGet("http://" + addr + "/healthz") },
		func(body string) bool { return strings.Contains(body, `"leading":true`) })
}
