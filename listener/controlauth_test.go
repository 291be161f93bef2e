package listener_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

// The control endpoint of a running listener refuses a DNS-rebinding
// request (a foreign Host, however same-origin it claims to be) and, with
// control_token_file, a request without the token.
func TestControlEndpointGuards(t *testing.T) {
	c := newCluster(t)
	c.startProvResolver(t)
	c.provPublish(t, "id: cg-app\n")
	tokenFile := filepath.Join(t.TempDir(), "control.token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := c.startProvNode(t, "cg-node", provNodeSpec{
		allow:    fmt.Sprintf("control: \"127.0.0.1:0\"\ncontrol_token_file: %s\n%s", tokenFile, testAllowAll),
		services: "  - service: cg-app\n",
	})
	addr := ""
	testcluster.Eventually(t, provSettle, "the control endpoint listens", func() bool { addr = n.l.ControlAddr(); return addr != "" })
	do := func(method, path, host, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	_, port, _ := strings.Cut(addr, ":")
	tests := []struct {
		name, method, path, host, token string
		want                            int
	}{
		{"rebinding pause", "POST", "/pause", "evil.example:" + port, "s3cret-token", http.StatusForbidden},
		{"rebinding status", "GET", "/status", "evil.example", "s3cret-token", http.StatusForbidden},
		{"no token", "POST", "/pause", addr, "", http.StatusUnauthorized},
		{"wrong token", "GET", "/status", addr, "guess", http.StatusUnauthorized},
		{"healthz needs no token", "GET", "/healthz", "localhost:" + port, "", http.StatusOK},
		{"status by localhost", "GET", "/status", "localhost:" + port, "s3cret-token", http.StatusOK},
	}
	for _, tt := range tests {
		code, body := do(tt.method, tt.path, tt.host, tt.token)
		if code != tt.want {
			t.Errorf("%s: %s %s Host %s: %d %s, want %d", tt.name, tt.method, tt.path, tt.host, code, strings.TrimSpace(body), tt.want)
		}
		if tt.name == "rebinding status" && strings.Contains(body, "cg-node") {
			t.Errorf("the refused request read the status: %s", body)
		}
		if n.l.Report().Queue.Paused {
			t.Fatalf("%s: the listener is paused by a refused request", tt.name)
		}
	}
	if code, body := do("POST", "/pause", addr, "s3cret-token"); code != http.StatusAccepted {
		t.Fatalf("pause with the token at %s: %d %s", addr, code, body)
	}
	testcluster.Eventually(t, provSettle, "the listener pauses", func() bool { return n.l.Report().Queue.Paused })
}
