package templates

import (
	"bytes"
	_ "embed"
	"fmt"
	"text/template"
)

// The local load balancer's config is the listener's own file, not a
// manifest's: its data is built and validated by the listener, so it is
// a plain text/template, not one of the builtins manifests name.
//
//go:embed builtin/local/haproxy.tmpl
var localHAProxySource string

var localHAProxy = template.Must(template.New("local-haproxy").Option("missingkey=error").Parse(localHAProxySource))

// LocalHAProxy is the data of a node's local load balancer config.
type LocalHAProxy struct {
	Socket         string // the runtime API's unix socket, from listener.yaml
	MaxConn        int
	CheckInter     string // e.g. "1s"
	TimeoutConnect string // e.g. "2s"
	Routes         []LocalRoute
}

// LocalRoute is one frontend on 127.0.0.1 and its backend.
type LocalRoute struct {
	Name    string // frontend and backend name
	Key     string // the provided key served
	Port    int
	Mode    string // "http" or "tcp"
	Servers []LocalServer
}

// LocalServer is one backend server: a live provider.
type LocalServer struct {
	Name string
	Addr string // IP:port
}

// RenderLocalHAProxy renders the local load balancer's haproxy.cfg.
func RenderLocalHAProxy(d LocalHAProxy) ([]byte, error) {
	var b bytes.Buffer
	if err := localHAProxy.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("templates: local haproxy: %w", err)
	}
	return b.Bytes(), nil
}
