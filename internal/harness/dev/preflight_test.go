package dev

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A second patchbay dev, started while one runs, fails before it changes
// anything: the running one's node directories, listener.yaml files and
// dev.log stay.
func TestSecondDevTouchesNothing(t *testing.T) {
	taken := func(t *testing.T) string {
		t.Helper()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l.Addr().String()
	}
	free := func(t *testing.T) string {
		t.Helper()
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) Cluster
		want  string
	}{
		{"consul port taken", func(t *testing.T, dir string) Cluster {
			return Cluster{Dir: dir, ConsulAddr: taken(t), NATSURL: "nats://" + free(t)}
		}, "consul-addr 127.0.0.1:"},
		{"nats port taken", func(t *testing.T, dir string) Cluster {
			return Cluster{Dir: dir, ConsulAddr: free(t), NATSURL: "nats://" + taken(t)}
		}, "nats-url nats://127.0.0.1:"},
		{"dir locked by the running dev", func(t *testing.T, dir string) Cluster {
			f, err := os.OpenFile(filepath.Join(dir, dirMarker), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			if err := lockFile(f); err != nil {
				t.Fatal(err)
			}
			return Cluster{Dir: dir, ConsulAddr: free(t), NATSURL: "nats://" + free(t)}
		}, "another patchbay dev runs with --dir "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), ".patchbay-dev")
			running := map[string]string{
				dirMarker:                           "made by patchbay dev\n",
				"dev.log":                           "the running dev's log\n",
				"web-1/listener.yaml":               "node: web-1\n",
				"web-1/etc/app-www/env":             "export PORT=18081\n",
				"services/app-www/10-app.yaml":      "id: app-www\n",
				"api-2/listener.yaml":               "node: api-2\n", // a dev node of the running one
				"lb-1/etc/nginx/conf.d/public.conf": "server {}\n",
			}
			for name, content := range running {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			err := Run(context.Background(), Config{Cluster: tt.setup(t, dir), Services: t.TempDir(), Out: &out})
			if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want ErrInUse naming %q", err, tt.want)
			}
			for name, content := range running {
				if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != content {
					t.Errorf("%s: %q, %v; want it untouched", name, got, err)
				}
			}
		})
	}
}

// A second patchbay dev checks everything before it starts anything and
// reports every conflict in one error: the running cluster's pid and
// directory, and each taken address with the flag that moves it.
func TestSecondDevReportsEveryConflict(t *testing.T) {
	taken := func(t *testing.T) string {
		t.Helper()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l.Addr().String()
	}
	dir := filepath.Join(t.TempDir(), ".patchbay-dev")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, dirMarker)
	if err := os.WriteFile(marker, []byte("made by patchbay dev\npid 4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(marker, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := lockFile(f); err != nil {
		t.Fatal(err)
	}
	consul, natsAddr, console, control := taken(t), taken(t), taken(t), taken(t)
	cfg := Config{
		Cluster: Cluster{Dir: dir, ConsulAddr: consul, NATSURL: "nats://" + natsAddr},
		Nodes:   []NodeSpec{{Name: "web-1", Control: control}},
		Console: console, Services: t.TempDir(), Out: &bytes.Buffer{},
	}
	wantAll := []string{
		"a dev cluster is already running", "--dir " + dir + " (pid 4242)",
		"consul-addr " + consul + " is taken", "--consul-addr 127.0.0.1:18500",
		"nats-url nats://" + natsAddr + " is taken", "--nats-url nats://127.0.0.1:14222",
		"web-1's control " + control + " is taken",
	}
	t.Run("Run", func(t *testing.T) {
		err := Run(context.Background(), cfg)
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("Run = %v, want ErrInUse", err)
		}
		for _, want := range wantAll {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Run's error does not say %q:\n%v", want, err)
			}
		}
	})
	t.Run("Preflight also checks the console", func(t *testing.T) {
		err := Preflight(cfg)
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("Preflight = %v, want ErrInUse", err)
		}
		for _, want := range append(wantAll, "console "+console+" is taken", "--http-addr 127.0.0.1:18700") {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Preflight's error does not say %q:\n%v", want, err)
			}
		}
	})
	t.Run("nothing taken", func(t *testing.T) {
		free := Config{Cluster: Cluster{Dir: filepath.Join(t.TempDir(), "d")}}
		for _, p := range []*string{&free.ConsulAddr, &free.NATSURL, &free.Console} {
			port, err := FreePort()
			if err != nil {
				t.Fatal(err)
			}
			*p = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		}
		free.NATSURL = "nats://" + free.NATSURL
		if err := Preflight(free); err != nil {
			t.Fatalf("Preflight = %v, want nil", err)
		}
	})
}
