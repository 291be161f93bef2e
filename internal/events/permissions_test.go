package events

import (
	"fmt"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// composeNATSConf is docker-compose.yml's nats-server configuration.
const composeNATSConf = "../../deploy/compose/nats.conf"

// The subject permissions of docker-compose.yml's NATS, as docs/security.md's NATS
// section shows them, run by a real nats-server: only a resolver may
// publish bindings events, listeners may only receive events and answer
// status requests, and an operator may ask for status and resume a
// rollout group.
func TestComposeNATSPermissions(t *testing.T) {
	opts, err := natsserver.ProcessConfigFile(composeNATSConf)
	if err != nil {
		t.Fatalf("%s: %v", composeNATSConf, err)
	}
	opts.Host, opts.Port, opts.HTTPPort, opts.NoLog, opts.NoSigs = "127.0.0.1", natsserver.RANDOM_PORT, 0, true, true
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready within 10s")
	}
	users := map[string]string{"resolver": "resolver-demo", "listener": "listener-demo", "operator": "operator-demo"}
	type client struct {
		nc     *nats.Conn
		denied chan string // subjects the server refused
	}
	connect := func(user string) client {
		c := client{denied: make(chan string, 16)}
		var err error
		c.nc, err = nats.Connect(srv.ClientURL(), nats.UserInfo(user, users[user]),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				if strings.Contains(err.Error(), "Permissions Violation") {
					c.denied <- err.Error()
				}
			}))
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		t.Cleanup(c.nc.Close)
		return c
	}
	if nc, err := nats.Connect(srv.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("connected without a user")
	}
	clients := map[string]client{}
	for u := range users {
		clients[u] = connect(u)
	}
	// A listener receives what it may receive.
	got := make(chan *nats.Msg, 16)
	// (Its status subscription is the one below: with two subscriptions
	// matching a request, nats-server counts the one answer it allows
	// against the second delivery, and refuses the answer.)
	for _, subj := range []string{"patchbay.*.bindings.>", "patchbay.*.rollout.>"} {
		if _, err := clients["listener"].nc.ChanSubscribe(subj, got); err != nil {
			t.Fatal(err)
		}
	}
	if err := clients["listener"].nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-clients["listener"].denied:
		t.Fatalf("a listener may not subscribe to its subjects: %s", d)
	default:
	}

	cases := []struct {
		who, subject string
		allowed      bool
	}{
		{"resolver", BindingsSubject("default", "app-www"), true},
		{"resolver", BindingsSubject("eu", "api"), true},
		{"resolver", RolloutSubject("default", "www"), false},
		{"listener", BindingsSubject("default", "app-www"), false},
		{"listener", RolloutSubject("default", "www"), false},
		{"operator", BindingsSubject("default", "app-www"), false},
		{"operator", RolloutSubject("default", "www"), true},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%s publishes %s", tc.who, tc.subject), func(t *testing.T) {
			c, body := clients[tc.who], fmt.Sprint(i)
			if err := c.nc.Publish(tc.subject, []byte(body)); err != nil {
				t.Fatal(err)
			}
			_ = c.nc.Flush()
			deadline := time.After(5 * time.Second)
			for {
				select {
				case m := <-got:
					if string(m.Data) != body {
						continue
					}
					if !tc.allowed {
						t.Fatalf("a listener received %s from %s", tc.subject, tc.who)
					}
					return
				case d := <-c.denied:
					if tc.allowed {
						t.Fatalf("refused: %s", d)
					}
					return
				case <-deadline:
					t.Fatal("neither delivered nor refused within 5s")
				}
			}
		})
	}

	for _, subject := range []string{StatusSubject, ChangesSubject} {
		t.Run("a listener answers an operator's request on "+subject, func(t *testing.T) {
			requestAnswered(t, clients["listener"].nc, clients["operator"].nc, subject, func() []string {
				var denied []string
				for _, c := range clients {
					for len(c.denied) > 0 {
						denied = append(denied, <-c.denied)
					}
				}
				return denied
			})
		})
	}
}

// requestAnswered: op's request on subject reaches lis, whose answer
// comes back.
func requestAnswered(t *testing.T, lis, op *nats.Conn, subject string, denied func() []string) {
	t.Helper()
	sub, err := lis.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond([]byte("last run")) })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := lis.Flush(); err != nil {
		t.Fatal(err)
	}
	reply, err := op.Request(subject, nil, 5*time.Second)
	if err != nil || string(reply.Data) != "last run" {
		t.Fatalf("%s request: %v, %v; refused: %q", subject, reply, err, denied())
	}
}
