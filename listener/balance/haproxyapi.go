package balance

// A small client of HAProxy's runtime API (the stats socket), of our own:
// HAProxy's Go client (haproxytech/client-native) cannot be fetched here,
// and the listener needs five commands of it. It lives in the listener's
// load balancing, the only package that applies changes to running
// servers; templates stays pure rendering.

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/model"
)

// ErrHAProxyAPI: HAProxy's runtime API refused a command or cannot be reached.
var ErrHAProxyAPI = errkind.New(errkind.Backend, "balance: haproxy runtime api")

// HAProxyAPI speaks to one HAProxy's stats socket (level admin), one
// command per connection: HAProxy answers and closes in that mode.
type HAProxyAPI struct {
	Socket  string
	Timeout time.Duration // per command
}

// Cmd runs one command and returns HAProxy's answer, trimmed.
func (h *HAProxyAPI) Cmd(ctx context.Context, command string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", h.Socket)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrHAProxyAPI, err)
	}
	defer func() { _ = conn.Close() }() // the answer is read in full before
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrHAProxyAPI, command, err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrHAProxyAPI, command, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Expect runs a command whose only successful answer is want ("" for the
// commands that answer nothing when they succeed).
func (h *HAProxyAPI) Expect(ctx context.Context, command, want string) error {
	out, err := h.Cmd(ctx, command)
	if err != nil {
		return err
	}
	if out != want {
		return fmt.Errorf("%w: %s: %s", ErrHAProxyAPI, command, out)
	}
	return nil
}

// Servers lists the names of the servers of backend, as running.
func (h *HAProxyAPI) Servers(ctx context.Context, backend string) ([]string, error) {
	out, err := h.Cmd(ctx, "show servers state "+backend)
	if err != nil {
		return nil, err
	}
	var names []string
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case i == 0 && line != "1":
			return nil, fmt.Errorf("%w: show servers state %s: %s", ErrHAProxyAPI, backend, out)
		case i == 0 || len(f) == 0 || strings.HasPrefix(line, "#"):
		case len(f) < 4:
			return nil, fmt.Errorf("%w: show servers state %s: unexpected line %q", ErrHAProxyAPI, backend, line)
		default:
			names = append(names, f[3])
		}
	}
	return names, nil
}

// AddServer adds a server, enables its health check when it has one, and
// takes it out of the maintenance a dynamic server starts in.
func (h *HAProxyAPI) AddServer(ctx context.Context, backend string, s model.HAProxyServer) error {
	id := backend + "/" + s.Name
	if err := h.Expect(ctx, "add server "+id+" "+s.Addr+" "+strings.Join(s.Args, " "), "New server registered."); err != nil {
		return err
	}
	if s.Checked() {
		if err := h.Expect(ctx, "enable health "+id, ""); err != nil {
			return err
		}
	}
	return h.Expect(ctx, "set server "+id+" state ready", "")
}

// DelServer puts a server in maintenance, so that it takes no new
// request, and deletes it once its connections are gone: HAProxy refuses
// to delete a server that still has some. drain bounds the wait.
func (h *HAProxyAPI) DelServer(ctx context.Context, backend, name string, drain time.Duration) error {
	id := backend + "/" + name
	if err := h.Expect(ctx, "set server "+id+" state maint", ""); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, drain)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := h.Cmd(ctx, "del server "+id)
		switch {
		case err != nil:
			return err
		case out == "Server deleted.":
			return nil
		case !strings.Contains(out, "still has"): // anything but "Server still has connections attached to it"
			return fmt.Errorf("%w: del server %s: %s", ErrHAProxyAPI, id, out)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: del server %s: not drained within %s: %s", ErrHAProxyAPI, id, drain, out)
		case <-tick.C:
		}
		// HAProxy closes a server's idle connections when it enters
		// maintenance, not those that turn idle later (a request that was
		// in flight): passing through drain, which takes no new request
		// either, and back makes it close them again.
		if err := h.Expect(ctx, "set server "+id+" state drain", ""); err != nil {
			return err
		}
		if err := h.Expect(ctx, "set server "+id+" state maint", ""); err != nil {
			return err
		}
	}
}
