package listener

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// unixScheme prefixes a control address that is a unix socket's path.
const unixScheme = "unix://"

// socketPath is the path of a unix:// control address, "" for host:port.
func socketPath(addr string) string {
	p, ok := strings.CutPrefix(addr, unixScheme)
	if !ok {
		return ""
	}
	return p
}

// listenUnix binds the unix socket path with mode 0600, so that only the
// listener's user (root) may connect: the kernel refuses every other
// user's connect. It binds in a private directory beside path and renames
// the socket into place once its mode is set, so the socket is never
// reachable with the default mode. A socket left by a killed listener is
// replaced; any other file at path is an error.
func listenUnix(path string) (net.Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("listener: control socket %q: want an absolute path, like %q", path, DefaultControlAddr)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("listener: control socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("listener: control socket %s: a file that is not a socket is there; remove it or set control to another path", path)
		}
		if c, err := net.Dial("unix", path); err == nil { // a killed listener's socket refuses
			_ = c.Close()
			return nil, fmt.Errorf("listener: control socket %s: another listener serves it; give each listener its own control path", path)
		}
	}
	private, err := os.MkdirTemp(dir, ".control-")
	if err != nil {
		return nil, fmt.Errorf("listener: control socket: %w", err)
	}
	defer func() { _ = os.RemoveAll(private) }() // empty once the socket moved
	staged := filepath.Join(private, "sock")
	ln, err := net.Listen("unix", staged)
	if err != nil {
		return nil, err // net's error names the path and the cause
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // it moves: closeUnix removes path
	err = os.Chmod(staged, 0o600)
	if err == nil {
		err = os.Rename(staged, path) // replaces a stale socket atomically
	}
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("listener: control socket %s: %w", path, err)
	}
	return ln, nil
}

// removeSocket closes the control socket's listener and removes the
// socket: its listener moved it, so closing it does not.
func removeSocket(path string, ln net.Listener) {
	_ = ln.Close()
	_ = os.Remove(path) // a socket left over is replaced at the next start
}
