package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

func TestResolverCommands(t *testing.T) {
	consul := testcluster.StartConsul(t)
	natsSrv := testcluster.StartNATS(t)
	addr := "--consul-addr=" + consul.Addr
	if code, _, stderr := patchbay(t, "publish", addr, "../../examples/services"); code != 0 {
		t.Fatalf("publish: %s", stderr)
	}
	cycle := writeServices(t, map[string]string{
		"a": "id: a\nrequires: {B: \"{B_URL}\"}\nprovides: {A_URL: \"http://{HOST}\"}\n",
		"b": "id: b\nrequires: {A: \"{A_URL}\"}\nprovides: {B_URL: \"http://{HOST}\"}\n",
	})

	steps := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"resolve", []string{"resolve", addr, "app-www"}, 0, []string{"DATABASE_URL  (masked)      datastore PRIMARY_DATABASE_URL", "unresolved API_URL (READONLY_API_URL): no live provider of READONLY_API_URL in federation default and no datastore"}, ""},
		{"resolve unknown", []string{"resolve", addr, "nope"}, 1, nil, "service nope is not published in federation default"},
		{"explain", []string{"explain", addr, "app-www", "DATABASE_URL"}, 0, []string{"✓  datastore (default)  PRIMARY_DATABASE_URL  (masked)", "result: (masked)"}, ""},
		// a datastore's value is masked (redact) unless --show-secrets
		{"resolve shown", []string{"resolve", addr, "app-www", "--show-secrets"}, 0, []string{"DATABASE_URL  postgres://db.internal:5432/app  datastore PRIMARY_DATABASE_URL"}, ""},
		{"explain unknown var", []string{"explain", addr, "app-www", "NOPE"}, 1, nil, "NOPE"},
		{"order from consul", []string{"order", addr}, 0, []string{"1. api\n2. app-www"}, ""},
		{"order with a cycle", []string{"order", cycle}, 1, nil, "a → b → a"},
		{"graph json", []string{"graph", "--format", "json", "../../examples/services"}, 0, []string{`"edges"`}, ""},
		{"graph bad format", []string{"graph", "--format", "png", "../../examples/services"}, 1, nil, `--format "png"`},
	}
	for _, s := range steps {
		code, stdout, stderr := patchbay(t, s.args...)
		ok := code == s.code && strings.Contains(stderr, s.stderr)
		for _, want := range s.stdout {
			ok = ok && strings.Contains(stdout, want)
		}
		if !ok {
			t.Fatalf("%s: exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", s.name, code, s.code, stdout, stderr)
		}
	}

	// The daemon, as a process: an api instance appears, app-www's binding
	// follows in Consul and is announced on NATS.
	sub := subscribeBindings(t, natsSrv.URL, "app-www")
	daemon := startPatchbay(t, "resolver", addr, "--nats-url", natsSrv.URL, "--quiet", "0")
	first := nextEvent(t, sub)
	// A SIGHUP is logged and ignored: the event below needs the daemon alive.
	if err := daemon.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	api := startPatchbay(t, "register", addr, "api", "--node", "api-1", "--address", "127.0.0.1", "--port", strconv.Itoa(testcluster.TCPBackend(t)))
	api.waitLine(t, "registered", 15*time.Second)
	registered := time.Now()
	for {
		e := nextEvent(t, sub)
		if e.Revision <= first.Revision {
			continue
		}
		code, stdout, _ := patchbay(t, "resolve", addr, "--json", "app-www")
		var b binding.Binding
		if code != 0 || json.Unmarshal([]byte(stdout), &b) != nil || !b.Vars["API_URL"].Resolved {
			t.Fatalf("after event %+v, resolve says %s", e, stdout)
		}
		t.Logf("api registered → bindings event on NATS after %s", time.Since(registered).Round(time.Millisecond))
		return
	}
}

// subscribeBindings subscribes to the bindings events of service until the
// test ends.
func subscribeBindings(t *testing.T, url, service string) *nats.Subscription {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync(events.BindingsSubject("default", service))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

func nextEvent(t *testing.T, sub *nats.Subscription) events.BindingsChanged {
	t.Helper()
	msg, err := sub.NextMsg(15 * time.Second)
	if err != nil {
		t.Fatalf("no bindings event: %v", err)
	}
	e, err := events.DecodeBindingsChanged(msg.Subject, msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A leader killed with SIGKILL cannot release its lock: the standby takes
// over once the leader's TTL check lapses (about 3 s), not after a session
// TTL stretched by Consul plus a lock delay (30+ s before).
func TestResolverKilledLeaderHandsOver(t *testing.T) {
	consul := testcluster.StartConsul(t)
	natsSrv := testcluster.StartNATS(t)
	addr := "--consul-addr=" + consul.Addr
	if code, _, stderr := patchbay(t, "publish", addr, "../../examples/services"); code != 0 {
		t.Fatalf("publish: %s", stderr)
	}
	sub := subscribeBindings(t, natsSrv.URL, "app-www")
	leader := startPatchbay(t, "resolver", addr, "--nats-url", natsSrv.URL, "--name", "r1")
	nextEvent(t, sub)
	startPatchbay(t, "resolver", addr, "--nats-url", natsSrv.URL, "--name", "r2")
	if err := leader.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if code, _, stderr := patchbay(t, "datastore", "set", addr, "PRIMARY_DATABASE_URL", "postgres://after-kill/app"); code != 0 {
		t.Fatalf("datastore set: %s", stderr)
	}
	msg, err := sub.NextMsg(15 * time.Second)
	if err != nil {
		t.Fatalf("no binding event within 15 s of the leader's kill: the standby did not take over (%v)", err)
	}
	e, err := events.DecodeBindingsChanged(msg.Subject, msg.Data)
	if err != nil || !strings.Contains(string(e.Binding), "postgres://after-kill/app") {
		t.Fatalf("event after the kill = %+v, %v", e, err)
	}
	t.Logf("leader killed → standby's binding event after %s", time.Since(killed).Round(time.Millisecond))
}
