package dev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/listener"
)

// fakeSource makes a patchbay source tree whose tools/consul module is a
// tiny program standing in for Consul: the build path runs for real, in
// seconds.
func fakeSource(t *testing.T, mainGo string) string {
	t.Helper()
	root := t.TempDir()
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "go.mod"), "module github.com/patchbay/patchbay\n\ngo 1.26\n")
	write(filepath.Join(root, "tools", "consul", "go.mod"), "module github.com/hashicorp/consul\n\ngo 1.26\n")
	write(filepath.Join(root, "tools", "consul", "main.go"), mainGo)
	return root
}

const fakeConsul = "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"stand-in consul\") }\n"

// onlyGo leaves PATH with the go command alone, so no consul is found on it.
func onlyGo(t *testing.T) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", filepath.Dir(goBin))
	if _, err := exec.LookPath("consul"); err == nil {
		t.Fatalf("consul is beside go in %s: this test cannot hide it", filepath.Dir(goBin))
	}
}

func TestFindConsul(t *testing.T) {
	t.Run("builds once from the tools module, then uses the cache", func(t *testing.T) {
		onlyGo(t)
		root := fakeSource(t, fakeConsul)
		var out bytes.Buffer
		bin, err := FindConsul(context.Background(), root, &out)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(root, "bin", "consul"); bin != want {
			t.Errorf("binary at %s, want %s", bin, want)
		}
		if !strings.Contains(out.String(), "No consul on PATH: building Consul") || !strings.Contains(out.String(), "built "+bin) {
			t.Errorf("no explanation and progress:\n%s", out.String())
		}
		// Up front: what, how many packages, how long, how to skip it; at the end, the count against the total.
		for _, re := range []string{`building Consul \(pinned\) from source into \S+, once: about \d+ minutes on 2 cores`, `Put consul on PATH to skip this\.`, `building Consul: [1-9]\d* packages in all \(go list -deps\)`, `\d+ of [1-9]\d* packages compiled|from Go's build cache`} {
			if !regexp.MustCompile(re).MatchString(out.String()) {
				t.Errorf("output does not match %s:\n%s", re, out.String())
			}
		}
		if got, err := exec.Command(bin).Output(); err != nil || string(got) != "stand-in consul\n" {
			t.Fatalf("built binary says %q, %v", got, err)
		}
		out.Reset()
		again, err := FindConsul(context.Background(), root, &out)
		if err != nil || again != bin || out.Len() != 0 {
			t.Errorf("second call: %s, %v, output %q; want the cached %s silently", again, err, out.String(), bin)
		}
	})
	t.Run("prefers consul on PATH", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "consul")
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", dir)
		bin, err := FindConsul(context.Background(), "", &bytes.Buffer{})
		if err != nil || bin != path {
			t.Errorf("got %s, %v; want %s", bin, err, path)
		}
	})
	t.Run("outside a source tree", func(t *testing.T) {
		onlyGo(t)
		_, err := FindConsul(context.Background(), "", &bytes.Buffer{})
		if !errors.Is(err, ErrNoConsul) || !strings.Contains(err.Error(), "install Consul") {
			t.Errorf("err = %v, want ErrNoConsul saying to install Consul", err)
		}
	})
	t.Run("a failed build leaves no binary", func(t *testing.T) {
		onlyGo(t)
		root := fakeSource(t, "package main\n\nfunc main() { undefinedThing() }\n")
		_, err := FindConsul(context.Background(), root, &bytes.Buffer{})
		if !errors.Is(err, ErrNoConsul) || !strings.Contains(err.Error(), "undefinedThing") {
			t.Errorf("err = %v, want ErrNoConsul with the compiler's message", err)
		}
		for _, p := range []string{"consul", "consul.partial"} {
			if _, err := os.Stat(filepath.Join(root, "bin", p)); err == nil {
				t.Errorf("bin/%s exists after a failed build", p)
			}
		}
	})
}

func TestSourceRoot(t *testing.T) {
	root := fakeSource(t, fakeConsul)
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, dir, want string }{
		{"the root", root, root},
		{"a directory inside", filepath.Join(root, "tools", "consul"), root},
		{"another module", other, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SourceRoot(tc.dir); got != tc.want {
				t.Errorf("SourceRoot(%s) = %q, want %q", tc.dir, got, tc.want)
			}
		})
	}
}

func TestPickPorts(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	takenAddr := taken.Addr().String()
	_, takenPort, _ := hostPort(takenAddr)
	n := NodeSpec{Name: "web-1", Control: takenAddr, Services: []ServiceSpec{{"app-www", free}, {"lb", 0}, {"api", takenPort}}}
	orig := append([]ServiceSpec(nil), n.Services...)
	if err := pickPorts(&n, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if n.Control == takenAddr {
		t.Errorf("control kept the taken %s", takenAddr)
	}
	if n.Services[0].Port != free || n.Services[1].Port != 0 {
		t.Errorf("services = %+v: a free preferred port and port 0 must stay", n.Services)
	}
	if p := n.Services[2].Port; p == takenPort || p == 0 {
		t.Errorf("api kept the taken port %d (got %d)", takenPort, p)
	}
	if orig[2].Port != takenPort {
		t.Error("pickPorts changed the caller's services slice")
	}
}

func TestEventSummaries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev.log")
	log, events, closeLog, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog()
	log.With("node", "lb-1").Info("simulated node: would run", "command", "nginx -s reload", "pid", 42)
	log.Debug("not an event")
	log.With("part", "resolver").Warn("binding written", "service", "api", "revision", 3)
	for _, want := range []string{
		" lb-1 simulated node: would run command=nginx -s reload",
		" resolver binding written service=api revision=3",
	} {
		select {
		case got := <-events:
			if !strings.HasSuffix(got, want) {
				t.Errorf("event %q, want it to end with %q", got, want)
			}
		default:
			t.Fatalf("no event for %q", want)
		}
	}
	select {
	case got := <-events:
		t.Errorf("unexpected event %q", got)
	default:
	}
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), "pid=42") || !strings.Contains(string(data), "node=lb-1") {
		t.Errorf("the log file lacks the full record: %q, %v", data, err)
	}
}

func TestQueueState(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 4, 5, 0, time.Local)
	for _, tc := range []struct {
		q    listener.QueueState
		want string
	}{
		{listener.QueueState{}, "idle"},
		{listener.QueueState{Paused: true, Pending: true}, "paused,pending"},
		{listener.QueueState{Running: true}, "running"},
		{listener.QueueState{RetryAt: at}, "retry 10:04:05"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := queueState(tc.q); got != tc.want {
				t.Errorf("queueState(%+v) = %q, want %q", tc.q, got, tc.want)
			}
		})
	}
}

func TestListenerFileLoads(t *testing.T) {
	c := Cluster{Dir: t.TempDir(), ConsulAddr: "127.0.0.1:8500", NATSURL: "nats://127.0.0.1:4222", Prefix: "patchbay/", Federation: "default"}
	n := NodeSpec{Name: "lb-1", Control: "127.0.0.1:7704", Services: []ServiceSpec{{"lb-public", 0}, {"api", 18091}}}
	signer, err := makeKey(c)
	if err != nil {
		t.Fatal(err)
	}
	path, err := writeListenerFile(c, n)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := listener.LoadConfig(path, globalKeys...)
	if err != nil {
		t.Fatalf("the written listener.yaml does not load: %v", err)
	}
	root, _ := filepath.Abs(filepath.Join(c.Dir, "lb-1"))
	got := fmt.Sprintf("%s %s %s %d:%s:%d", cfg.Node, cfg.Root, cfg.Control, len(cfg.Services), cfg.Services[1].Service, cfg.Services[1].Port)
	if want := fmt.Sprintf("lb-1 %s 127.0.0.1:7704 2:api:18091", root); got != want {
		t.Errorf("loaded %q, want %q", got, want)
	}
	// The node trusts the resolver's key of this run, and only that one.
	keys, err := os.ReadFile(cfg.Events.PublicKeysFile)
	if err != nil || string(keys) != signer.PublicKey()+"\n" {
		t.Errorf("events.public_keys_file %s holds %q (%v), want the resolver's %s", cfg.Events.PublicKeysFile, keys, err, signer.PublicKey())
	}
	if fi, err := os.Stat(filepath.Join(c.Dir, "resolver.nk")); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("resolver.nk has mode %v, want 0600", fi.Mode())
	}
}

func TestPrepareDir(t *testing.T) {
	services := t.TempDir()
	if err := os.WriteFile(filepath.Join(services, "svc.yaml"), []byte("id: svc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("refuses a directory it did not make", func(t *testing.T) {
		dir := t.TempDir()
		mine := filepath.Join(dir, "notes.txt")
		if err := os.WriteFile(mine, []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := prepareDir(Config{Cluster: Cluster{Dir: dir}, Services: services, Out: &bytes.Buffer{}})
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), dir) {
			t.Errorf("err = %v, want ErrInUse naming %s", err, dir)
		}
		if _, err := os.Stat(mine); err != nil {
			t.Errorf("the user's file is gone: %v", err)
		}
	})
	t.Run("clears the last run's nodes and keeps edited manifests", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), ".patchbay-dev")
		cfg := Config{Cluster: Cluster{Dir: dir}, Services: services, Out: &bytes.Buffer{}}
		if err := prepareDir(cfg); err != nil {
			t.Fatal(err)
		}
		edited := filepath.Join(dir, "services", "svc.yaml")
		stale := filepath.Join(dir, "web-1", "listener.yaml")
		for path, content := range map[string]string{edited: "id: svc\npublic: true\n", stale: "node: web-1\n"} {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := prepareDir(cfg); err != nil {
			t.Fatal(err)
		}
		if data, err := os.ReadFile(edited); err != nil || string(data) != "id: svc\npublic: true\n" {
			t.Errorf("edited manifest = %q, %v; want it kept", data, err)
		}
		if _, err := os.Stat(stale); err == nil {
			t.Error("the last run's node files are still there")
		}
	})
}

func TestFindNATS(t *testing.T) {
	t.Run("prefers nats-server on PATH", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "nats-server")
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", dir)
		bin, err := FindNATS(context.Background(), "", &bytes.Buffer{})
		if err != nil || bin != path {
			t.Errorf("got %s, %v; want %s", bin, err, path)
		}
	})
	t.Run("outside a source tree", func(t *testing.T) {
		onlyGo(t)
		_, err := FindNATS(context.Background(), "", &bytes.Buffer{})
		if !errors.Is(err, ErrNoNATS) || !strings.Contains(err.Error(), "go install github.com/nats-io/nats-server") {
			t.Errorf("err = %v, want ErrNoNATS saying how to install nats-server", err)
		}
	})
}
