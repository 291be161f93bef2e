package registry_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/registry"
	"github.com/patchbay/patchbay/templates"
)

// The templates package is the Fetcher's user; its resolver import makes
// this an external test package.
var _ templates.Fetcher = (*registry.Lookups)(nil)

func TestLookups(t *testing.T) {
	consul := testcluster.StartConsul(t)
	if _, err := consul.Client.KV().Put(&api.KVPair{Key: "cfg/motd", Value: []byte("hello")}, nil); err != nil {
		t.Fatal(err)
	}
	c, err := registry.New(registry.WithAddress(consul.Addr))
	if err != nil {
		t.Fatal(err)
	}
	lookups, err := c.Lookups()
	if err != nil {
		t.Fatal(err)
	}
	defer lookups.Close()
	r := templates.NewRenderer(templates.WithFetcher(lookups))

	cases := []struct {
		name, template, want string
		wantErr              []error
		errText              string
	}{
		{"key", `{{ key "cfg/motd" }}`, "hello", nil, ""},
		{"key twice", `{{ key "cfg/motd" }}-{{ key "cfg/motd" }}`, "hello-hello", nil, ""},
		{"keyOrDefault of a missing key", `{{ keyOrDefault "cfg/none" "dflt" }}`, "dflt", nil, ""},
		{"keyExists", `{{ keyExists "cfg/none" }}`, "false", nil, ""},
		{"service", `{{ range service "consul" }}{{ .Port }}{{ end }}`, "", nil, ""},
		{"missing key", `{{ key "cfg/none" }}`, "", []error{templates.ErrLookup, registry.ErrNotFound}, "kv.block(cfg/none)"},
		{"secret without vault", `{{ with secret "kv/x" }}{{ end }}`, "", []error{templates.ErrLookup}, "secret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := r.Render(context.Background(), tc.name, tc.template, templates.Data{Service: "app"})
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Fatalf("error %v, want %v", err, want)
				}
			}
			if tc.wantErr != nil {
				if !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("error %q does not name %q", err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "service" {
				if len(out) == 0 {
					t.Fatal("service consul rendered no port")
				}
				return
			}
			if string(out) != tc.want {
				t.Fatalf("rendered %q, want %q", out, tc.want)
			}
		})
	}
}

// A Consul that accepts connections and never answers fails the render
// when the fetch timeout passes, instead of hanging it.
func TestLookupsSilentConsul(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() { // ends when the listener closes
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	c, err := registry.New(registry.WithAddress(l.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	lookups, err := c.Lookups()
	if err != nil {
		t.Fatal(err)
	}
	r := templates.NewRenderer(templates.WithFetcher(lookups), templates.WithFetchTimeout(300*time.Millisecond))
	_, err = r.Render(context.Background(), "motd", `{{ key "cfg/motd" }}`, templates.Data{})
	if !errors.Is(err, templates.ErrLookup) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("render against a silent consul: %v", err)
	}
	// The abandoned request ends when its connection does.
	l.Close()
	mu.Lock()
	for _, conn := range conns {
		conn.Close()
	}
	mu.Unlock()
	lookups.Close()
}
