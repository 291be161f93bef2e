package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/harness/testcluster"
)

const rootToken = "11111111-2222-3333-4444-555555555555"

// Rules of the tokens the permission tests use; each adds one permission
// to the one before, so each stops one step further.
const (
	rulesNoKeys   = `node_prefix "" { policy = "read" }`
	rulesReadOnly = rulesNoKeys + "\n" + `key_prefix "" { policy = "read" }` + "\n" + `service_prefix "" { policy = "read" }`
	rulesService  = rulesReadOnly + "\n" + `service_prefix "" { policy = "write" }`
	rulesSession  = rulesService + "\n" + `session_prefix "" { policy = "write" }`
)

// A 403 names the key or resource and the rule that would allow the
// request, and matches ErrPermissionDenied, wherever consul/api reports
// it: as a StatusError or only as text (its Lock keeps only the text).
func TestPermissionDenied(t *testing.T) {
	consul := startACLConsul(t)
	root := newClient(t, consul, WithToken(rootToken))
	ctx := context.Background()
	publish(t, root, parseManifest(t, "id: web\nprovides: {WEB_URL: \"http://{HOST}:{PORT}\"}\n"))
	token := func(rules string) Option { return WithToken(testcluster.CreateToken(t, consul, rootToken, rules)) }
	p := root.Prefix()
	tests := []struct {
		name  string
		rules string
		call  func(c *Client) error
		want  []string
	}{
		{"publish with a read-only token", rulesReadOnly, func(c *Client) error {
			_, err := c.Publish(ctx, parseManifest(t, "id: api\n"))
			return err
		}, []string{"write " + p + "registry/manifests/default/api: the ACL token (AccessorID '", `lacks key:write on "` + p + `registry/manifests/default/api"; add the rule key_prefix "` + p + `registry/manifests/default/" { policy = "write" } to its policy`}},
		{"read without key rights", rulesNoKeys, func(c *Client) error {
			_, err := c.Manifest(ctx, "default", "web")
			return err
		}, []string{`lacks key:read on "` + p + `registry/manifests/default/web"; add the rule key_prefix "` + p + `registry/manifests/default/" { policy = "read" }`}},
		{"leader candidacy without service rights", rulesReadOnly, func(c *Client) error {
			return lead(ctx, c)
		}, []string{"register patchbay-resolver-test", "lacks service:write on", `add the rule service "patchbay-resolver" { policy = "write" }`}},
		{"leader lock without session rights", rulesService, func(c *Client) error {
			return lead(ctx, c)
		}, []string{"lacks session:write on", `add the rule session "`}},
		{"leader lock without key write", rulesSession, func(c *Client) error {
			return lead(ctx, c)
		}, []string{"acquire " + p + "locks/leader/resolver", `add the rule key "` + p + `locks/leader/resolver" { policy = "write" }`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, consul, token(tt.rules), WithPrefix(p))
			err := tt.call(c)
			if !errors.Is(err, ErrPermissionDenied) || errors.Is(err, ErrUnreachable) {
				t.Fatalf("error = %v, want ErrPermissionDenied only", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %v\nwant it to contain %s", err, w)
				}
			}
		})
	}
}

// lead runs for the resolver's leadership once and gives it up.
func lead(ctx context.Context, c *Client) error {
	cand, err := c.Campaign(ctx, "resolver", "test")
	if err != nil {
		return err
	}
	defer cand.Close(ctx)
	lead, err := cand.Acquire(ctx)
	if err != nil {
		return err
	}
	return lead.Release()
}

// Consul answers a list with the keys the token may not read left out and
// no 403; unlisted tells a denied list from a short one.
func TestUnlisted(t *testing.T) {
	consul := startACLConsul(t)
	root := newClient(t, consul, WithToken(rootToken))
	p := root.Prefix()
	publish(t, root, parseManifest(t, "id: web\n"))
	if _, err := root.SetDatastore(context.Background(), "default", "A_URL", "x"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, rules string
		denied      bool
	}{
		{"reads all", `key_prefix "` + p + `registry/" { policy = "read" }`, false},
		{"reads manifests only", `key_prefix "` + p + `registry/manifests/" { policy = "read" }`, true},
		{"reads nothing", rulesNoKeys, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, consul, WithToken(testcluster.CreateToken(t, consul, rootToken, tt.rules)), WithPrefix(p))
			_, meta, err := c.consul.KV().List(c.keys.inputs(), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = c.unlisted(meta, c.keys.inputs())
			if errors.Is(err, ErrPermissionDenied) != tt.denied {
				t.Fatalf("unlisted = %v, want denied %v", err, tt.denied)
			}
			if tt.denied && !strings.Contains(err.Error(), `add the rule key_prefix "`+p+`registry/" { policy = "read" }`) {
				t.Fatalf("error = %v; want the rule", err)
			}
		})
	}
}

// The errors an instance owner meets name the missing rule, step by step
// as a token gains permissions: the owner's loop sees them (and must stop
// on ErrPermissionDenied; that loop is the owner's to change).
func TestOwnerPermissionDenied(t *testing.T) {
	consul := startACLConsul(t)
	root := newClient(t, consul, WithToken(rootToken))
	publish(t, root, parseManifest(t, "id: web\nprovides: {WEB_URL: \"http://{HOST}:{PORT}\"}\n"))
	p := root.Prefix()
	tests := []struct {
		name, rules, want string
	}{
		{"read-only", rulesReadOnly, `lacks service:write on "web"; add the rule service "web" { policy = "write" }`},
		{"service write", rulesService, `lacks session:write on`},
		{"session write", rulesSession, `add the rule key_prefix "` + p + `registry/instances/default/" { policy = "write" }`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			c := newClient(t, consul, WithToken(testcluster.CreateToken(t, consul, rootToken, tt.rules)), WithPrefix(p), WithLogger(log))
			register(t, c, InstanceSpec{Federation: "default", Service: "web", Node: "n1", Address: "127.0.0.1", Port: 8080})
			testcluster.Eventually(t, 15*time.Second, "a permission error naming the rule", func() bool {
				s := strings.ReplaceAll(logs.String(), `\"`, `"`) // slog quotes the error
				return strings.Contains(s, "registry: permission denied") && strings.Contains(s, tt.want)
			})
		})
	}
}

// startACLConsul starts a default-deny Consul and waits until its leader
// has set up the initial management token, which comes after the election.
func startACLConsul(t *testing.T) *testcluster.Consul {
	t.Helper()
	consul := testcluster.StartConsul(t, testcluster.WithACLs(rootToken))
	testcluster.Eventually(t, 10*time.Second, "the management token", func() bool {
		_, _, err := consul.Client.ACL().TokenReadSelf(nil)
		return err == nil
	})
	return consul
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
