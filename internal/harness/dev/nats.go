package dev

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// FindNATS returns a nats-server binary, found or built like Consul's, from
// the version patchbay's own go.mod pins. The server runs as a child process
// rather than embedded: linking nats-server would put its packages, and the
// once-a-second CPU sampler its init starts, into every listener.
func FindNATS(ctx context.Context, srcRoot string, w io.Writer) (string, error) {
	return findServer(ctx, server{
		name: "nats-server", title: "NATS", module: ".", pkg: "github.com/nats-io/nats-server/v2", took: "2 minutes on 2 cores",
		install: "install nats-server (go install github.com/nats-io/nats-server/v2@latest)", missing: ErrNoNATS,
	}, srcRoot, w)
}

// startNATS runs bin as a NATS server at the URL's address, logging to
// logFile, and returns once it accepts connections.
func startNATS(ctx context.Context, bin, url, logFile string) (*child, error) {
	host, port, err := hostPort(url)
	if err != nil {
		return nil, fmt.Errorf("nats-url %q: %w; give nats://host:port", url, err)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if err := portFree(addr); err != nil {
		return nil, fmt.Errorf("%w: nats-url %s is taken (another NATS server?): stop it, or run patchbay dev --nats-url nats://127.0.0.1:14222 and give the other commands the same flag", ErrInUse, url)
	}
	ns, err := startChild(logFile, bin, "--addr", host, "--port", strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	accepts := func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close() // only dialled to see it accepts
		}
		return err == nil
	}
	if err := ns.await(ctx, "nats server at "+url, logFile, accepts); err != nil {
		ns.Stop()
		return nil, err
	}
	return ns, nil
}
