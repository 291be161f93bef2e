package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/listener"
)

// controlAction is one command that posts to the listener's control
// endpoint.
type controlAction struct {
	name, short, long, example string
	// done says what happened, given the endpoint's address.
	done func(addr string) string
}

func newPauseCmd(a *app) *cobra.Command {
	return a.controlCmd(controlAction{
		name:  "pause",
		short: "Pause the listener on this host: no provision run starts until resume",
		long: `Pause tells the listener on this host (patchbay listen) to start no provision
run: files stay as they are, whatever changes in the cluster, while you work
on the host by hand. A run in progress finishes. Changes that arrive while
paused are remembered, and patchbay resume applies them.

The command talks to the listener's control endpoint, by default
` + listener.DefaultControlAddr + ` (the control setting of listener.yaml).`,
		example: `  patchbay pause
  patchbay pause --control unix:///run/patchbay/listener.sock
  patchbay pause --control 127.0.0.1:7676 --control-token-file /etc/patchbay/control.token
  PATCHBAY_CONTROL=10.0.0.5:7676 patchbay pause`,
		done: func(addr string) string {
			return "paused the listener at " + addr + "; triggers are remembered until resume"
		},
	})
}

func newResumeCmd(a *app) *cobra.Command {
	return a.controlCmd(controlAction{
		name:  "resume",
		short: "Resume the listener on this host after pause, with one provision run at once",
		long: `Resume lets the listener on this host start provision runs again after
patchbay pause. It queues one run at once: what changed while the listener was
paused is not known, so it renders everything afresh.

To resume a halted rollout group instead, see patchbay rollout resume.`,
		example: `  patchbay resume
  patchbay resume --control 127.0.0.1:7676`,
		done: func(addr string) string {
			return "resumed the listener at " + addr + "; a provision run is queued to catch up"
		},
	})
}

func newProvisionCmd(a *app) *cobra.Command {
	return a.controlCmd(controlAction{
		name:  "provision",
		short: "Run a provision on this host now, as soon as the throttle allows",
		long: `Provision asks the listener on this host for a provision run now, without
waiting for a change: it re-renders every file and runs the provision commands.
The run skips the quiet window but respects the throttle (min_interval,
burst), and joins a run already queued. Follow it with patchbay status.`,
		example: `  patchbay provision
  patchbay provision --control 127.0.0.1:7676`,
		done: func(addr string) string {
			return "asked the listener at " + addr + " for a provision run; it starts as soon as the throttle allows"
		},
	})
}

// controlResult is the --json output of pause, resume and provision.
type controlResult struct {
	Action  string `json:"action"`
	Control string `json:"control"`
	Message string `json:"message"`
}

// controlCmd builds a command that posts to /<name> of the control endpoint.
func (a *app) controlCmd(act controlAction) *cobra.Command {
	addr := os.Getenv("PATCHBAY_CONTROL")
	if addr == "" {
		addr = listener.DefaultControlAddr
	}
	tokenFile := os.Getenv("PATCHBAY_CONTROL_TOKEN_FILE")
	var asJSON bool
	cmd := &cobra.Command{
		Use:     act.name + " [--control ADDR]",
		Short:   act.short,
		Long:    act.long + controlAuthNote,
		Example: act.example,
		Args:    namedArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.postControl(cmd.Context(), addr, tokenFile, act.name); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(controlResult{Action: act.name, Control: addr, Message: act.done(addr)})
			}
			_, err := fmt.Fprintln(a.stdout, act.done(addr))
			return err
		},
	}
	cmd.Flags().StringVar(&addr, "control", addr, "address of the listener's control endpoint: unix:///PATH, host:port or http://host:port [$PATCHBAY_CONTROL]")
	cmd.Flags().StringVar(&tokenFile, "control-token-file", tokenFile, "file holding the token of listener.yaml's control_token_file [$PATCHBAY_CONTROL_TOKEN_FILE]")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"action", "control", "message"} as JSON`)
	return cmd
}

const controlAuthNote = `

By default the control endpoint is a unix socket only the listener's user
(root) may use: run the command as that user. A listener on TCP needs
control_token_file in listener.yaml, else anyone who can reach it can pause
the node; pass the same file with --control-token-file.`

// postControl posts to the control endpoint's /<action>.
func (a *app) postControl(ctx context.Context, addr, tokenFile, action string) error {
	base, client, err := controlTransport(addr)
	if err != nil {
		return err
	}
	token, err := controlToken(tokenFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.g.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.JoinPath(action).String(), nil)
	if err != nil {
		return usageErrorf("--control %q: %w", addr, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return controlUnreachable(addr, err, a.g.Timeout.String())
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		// Something answers there, but not a listener that knows the action.
		return fmt.Errorf("control endpoint at %s answered %s to POST /%s: %s; is --control the address of `patchbay listen`?",
			addr, resp.Status, action, strings.Join(strings.Fields(string(body)), " "))
	}
	return nil
}

// controlTransport is the URL and the client that reach the control endpoint
// at addr: a unix socket (unix:///run/patchbay/listener.sock, the default)
// or host:port and a URL.
func controlTransport(addr string) (*url.URL, *http.Client, error) {
	sock, ok := strings.CutPrefix(addr, "unix://")
	if !ok {
		u, err := controlURL(addr)
		return u, http.DefaultClient, err
	}
	if !filepath.IsAbs(sock) {
		return nil, nil, usageErrorf("--control %q: the socket's path must be absolute, such as %s", addr, listener.DefaultControlAddr)
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}
	// The Host is localhost: the endpoint checks Host on TCP only.
	return &url.URL{Scheme: "http", Host: "localhost"}, &http.Client{Transport: &http.Transport{DialContext: dial}}, nil
}

// controlURL accepts host:port (the form listener.yaml uses) or a URL.
func controlURL(addr string) (*url.URL, error) {
	raw := addr
	if !strings.Contains(addr, "://") {
		raw = "http://" + addr
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, usageErrorf("--control %q is not an address; give a unix socket, such as %s, or host:port", addr, listener.DefaultControlAddr)
	}
	return u, nil
}

// controlUnreachable is the one-line error for a listener that does not
// answer, with the most specific cause.
func controlUnreachable(addr string, err error, timeout string) error {
	var op *net.OpError
	cause := err
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer from a listener's control endpoint at %s within %s (%w); is `patchbay listen` running? set --control to its control address", addr, timeout, context.DeadlineExceeded)
	case errors.As(err, &op):
		cause = op.Err // "connect: connection refused", without the URL repeated
	}
	return fmt.Errorf("cannot reach a listener's control endpoint at %s: %w; is `patchbay listen` running? set --control to its control address", addr, cause)
}
