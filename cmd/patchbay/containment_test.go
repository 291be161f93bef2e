package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/console"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/listener"
)

// secretOutput is what a root-only file holds, which a failing test
// command prints.
const secretOutput = "TOP-SECRET-CONTENT"

// TestCommandOutputStaysOnNode: a failing test command prints a root-only
// file. Everything that leaves the node (the status in Consul, `patchbay
// status`, the console) carries the result and the reason, not the
// output; the node's log has it, and so does the control endpoint's
// /status, for whoever holds its token.
func TestCommandOutputStaysOnNode(t *testing.T) {
	c := startListenCluster(t)
	n := newListenNode(t, c, "leak-1", true)
	secret := filepath.Join(n.dir, "root-only")
	if err := os.WriteFile(secret, []byte(secretOutput+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(n.dir, "control.token")
	if err := os.WriteFile(tokenFile, []byte("tok-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.publish(t, map[string]string{"leak": fmt.Sprintf(`id: leak
environment: {VERSION: "1"}
tests:
  - {name: prints-secret, command: [sh, -c, "cat %s; exit 3"]}
templates:
  env: {source: "builtin:env", destination: /etc/leak/env}
`, secret)})
	n.write(t, "  - service: leak\n", fmt.Sprintf("allow: {commands: [[sh, -c, \"**\"]]}\ncontrol_token_file: %q\n", tokenFile))
	d := startListen(t, "--config", n.path)

	ctx := t.Context()
	testcluster.Eventually(t, 30*time.Second, "the run fails on the test and records it in Consul", func() bool {
		statuses, _, err := c.reg.Statuses(ctx)
		return err == nil && len(statuses) == 1 && strings.Contains(statuses[0].Details["leak"], "test prints-secret failed")
	})
	statuses, _, err := c.reg.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recorded, _ := json.Marshal(statuses)
	if strings.Contains(string(recorded), secretOutput) {
		t.Errorf("status in Consul holds the command's output: %s", recorded)
	}
	if !strings.Contains(string(recorded), "exit status 3") {
		t.Errorf("status in Consul %s: want the reason (exit status 3)", recorded)
	}

	flags := append(c.flags(), "status")
	for _, args := range [][]string{flags, append(flags, "--json")} {
		code, stdout, stderr := patchbay(t, args...)
		if code != 0 || !strings.Contains(stdout, "test prints-secret failed") || !strings.Contains(stdout, "exit status 3") {
			t.Fatalf("patchbay %s: exit %d\n%s\n%s", strings.Join(args, " "), code, stdout, stderr)
		}
		if strings.Contains(stdout+stderr, secretOutput) {
			t.Errorf("patchbay %s prints the command's output:\n%s", strings.Join(args, " "), stdout)
		}
	}

	if state := consoleState(t, c); strings.Contains(state, secretOutput) || !strings.Contains(state, "test prints-secret failed") {
		t.Errorf("console /api/state: want the reason without the output:\n%s", state)
	}

	get := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.control+"/status", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(""); code != http.StatusUnauthorized || strings.Contains(body, secretOutput) {
		t.Errorf("GET /status without the token: %d %s, want 401 without the output", code, body)
	}
	if code, body := get("tok-123"); code != http.StatusOK || !strings.Contains(body, secretOutput) {
		t.Errorf("GET /status with the token: %d %s, want the test's output for the node's operator", code, body)
	}
	testcluster.Eventually(t, 10*time.Second, "the node's log has the output", func() bool {
		return strings.Contains(d.stderr.String()+d.stdout.String(), secretOutput)
	})
}

// consoleState is the console's /api/state once it shows a recorded run.
func consoleState(t *testing.T, c *listenCluster) string {
	t.Helper()
	srv := console.New(c.reg, console.WithLogger(discardLogger()), console.WithRefresh(100*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Run(ctx) })
	web := httptest.NewServer(srv.Handler())
	defer func() { cancel(); wg.Wait(); web.Close() }()
	var body string
	testcluster.Eventually(t, 10*time.Second, "the console shows the node's run", func() bool {
		resp, err := http.Get(web.URL + "/api/state")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, listener.ResultFailed)
	})
	return body
}
