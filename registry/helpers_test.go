package registry

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/manifest"
)

// newClient returns a client on its own prefix, so subtests sharing one
// Consul do not see each other's data.
func newClient(t *testing.T, consul *testcluster.Consul, opts ...Option) *Client {
	t.Helper()
	prefix := "t/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "/"
	c, err := New(append([]Option{WithAddress(consul.Addr), WithPrefix(prefix), WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func loadExamples(t *testing.T) *manifest.Set {
	t.Helper()
	set, err := manifest.Load("../examples/services")
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func parseManifest(t *testing.T, doc string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func publish(t *testing.T, c *Client, m *manifest.Manifest) {
	t.Helper()
	if _, err := c.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// instances returns the live instances of service in the snapshot.
func instances(t *testing.T, c *Client, service string) []binding.Instance {
	t.Helper()
	snap, err := c.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []binding.Instance
	for _, in := range snap.Instances {
		if in.Service == service {
			out = append(out, in)
		}
	}
	return out
}

func register(t *testing.T, c *Client, spec InstanceSpec, opts ...OwnerOption) *Owner {
	t.Helper()
	ctx := context.Background()
	o, err := c.Register(ctx, spec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close(ctx) })
	return o
}

// destroySessions destroys every session of that name, as a server does
// when it finds a session's node or checks failed.
func destroySessions(t *testing.T, consul *testcluster.Consul, name string) {
	t.Helper()
	sessions, _, err := consul.Client.Session().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if s.Name == name {
			if _, err := consul.Client.Session().Destroy(s.ID, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func waitRegistered(t *testing.T, o *Owner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := o.WaitRegistered(ctx); err != nil {
		t.Fatal(err)
	}
}

// testLogger sends logs to the test's log, shown with -v or on failure.
func testLogger(t *testing.T) *slog.Logger { return testcluster.Logger(t, "registry") }
