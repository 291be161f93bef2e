package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/harness/testcluster"
	"github.com/patchbay/patchbay/manifest"
)

func TestPublish(t *testing.T) {
	consul := testcluster.StartConsul(t)
	ctx := context.Background()

	t.Run("idempotent", func(t *testing.T) {
		c := newClient(t, consul)
		set := loadExamples(t)
		www := set.Services[1].Manifest
		if changed, err := c.Publish(ctx, &www); err != nil || !changed {
			t.Fatalf("first publish: changed=%v err=%v", changed, err)
		}
		before, _, _ := consul.Client.KV().Get(c.keys.manifest(www.Federation, www.ID), nil)
		if changed, err := c.Publish(ctx, &www); err != nil || changed {
			t.Fatalf("identical publish: changed=%v err=%v", changed, err)
		}
		after, _, _ := consul.Client.KV().Get(c.keys.manifest(www.Federation, www.ID), nil)
		if before.ModifyIndex != after.ModifyIndex {
			t.Fatalf("identical publish bumped the modify index %d → %d", before.ModifyIndex, after.ModifyIndex)
		}
		got, err := c.Manifest(ctx, www.Federation, www.ID)
		if err != nil || got.ID != www.ID || got.Requires["DATABASE_URL"].Key != "PRIMARY_DATABASE_URL" {
			t.Fatalf("read back %+v, %v", got, err)
		}
		www.Public = false
		if changed, err := c.Publish(ctx, &www); err != nil || !changed {
			t.Fatalf("changed publish: changed=%v err=%v", changed, err)
		}
	})

	t.Run("stale check-and-set conflicts", func(t *testing.T) {
		c := newClient(t, consul)
		key := c.keys.manifest("default", "svc")
		publish(t, c, parseManifest(t, "id: svc\n"))
		stale, _ := c.get(ctx, key)
		publish(t, c, parseManifest(t, "id: svc\npublic: true\n")) // someone else, in between
		w, cancel := c.write(ctx)
		defer cancel()
		ok, _, err := c.consul.KV().CAS(&api.KVPair{Key: key, Value: []byte(`{}`), ModifyIndex: stale.ModifyIndex}, w)
		if err != nil || ok {
			t.Fatalf("CAS with a stale index: ok=%v err=%v; the later publish would be lost", ok, err)
		}
	})

	t.Run("concurrent publishes never silently overwrite", func(t *testing.T) {
		c := newClient(t, consul)
		const writers = 8
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			succeeded = map[string]bool{}
		)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := parseManifest(t, "id: svc\nenvironment: {WRITER: \""+string(rune('a'+i))+"\"}\n")
				_, err := c.Publish(ctx, m)
				switch {
				case err == nil:
					mu.Lock()
					succeeded[m.Environment["WRITER"]] = true
					mu.Unlock()
				case !errors.Is(err, ErrConflict):
					t.Errorf("writer %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		final, err := c.Manifest(ctx, "default", "svc")
		if err != nil {
			t.Fatal(err)
		}
		if !succeeded[final.Environment["WRITER"]] {
			t.Fatalf("stored writer %q, but it was told it failed (succeeded: %v)", final.Environment["WRITER"], succeeded)
		}
		t.Logf("%d of %d concurrent writers succeeded, the rest got ErrConflict", len(succeeded), writers)
	})

	t.Run("unpublish", func(t *testing.T) {
		c := newClient(t, consul)
		publish(t, c, parseManifest(t, "id: svc\n"))
		if err := c.Unpublish(ctx, "default", "svc"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Manifest(ctx, "default", "svc"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after unpublish: %v", err)
		}
		if err := c.Unpublish(ctx, "default", "svc"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second unpublish: %v", err)
		}
	})
}

func TestDatastores(t *testing.T) {
	consul := testcluster.StartConsul(t)
	c := newClient(t, consul)
	ctx := context.Background()
	tests := []struct {
		name    string
		do      func() (any, error)
		want    any
		wantErr error
	}{
		{"set", func() (any, error) { return c.SetDatastore(ctx, "default", "PRIMARY_DATABASE_URL", "postgres://a") }, true, nil},
		{"set same", func() (any, error) { return c.SetDatastore(ctx, "default", "PRIMARY_DATABASE_URL", "postgres://a") }, false, nil},
		{"get", func() (any, error) { return c.Datastore(ctx, "default", "PRIMARY_DATABASE_URL") }, "postgres://a", nil},
		{"other federation", func() (any, error) { return c.Datastore(ctx, "pci", "PRIMARY_DATABASE_URL") }, "", ErrNotFound},
		{"bad key", func() (any, error) { return c.SetDatastore(ctx, "default", "lower", "x") }, false, ErrInvalid},
		{"empty value", func() (any, error) { return c.SetDatastore(ctx, "default", "A_URL", "") }, false, ErrInvalid},
		{"rm", func() (any, error) { return nil, c.DeleteDatastore(ctx, "default", "PRIMARY_DATABASE_URL") }, nil, nil},
		{"get removed", func() (any, error) { return c.Datastore(ctx, "default", "PRIMARY_DATABASE_URL") }, "", ErrNotFound},
		{"rm removed", func() (any, error) { return nil, c.DeleteDatastore(ctx, "default", "PRIMARY_DATABASE_URL") }, nil, ErrNotFound},
	}
	for _, tt := range tests { // in order: each step builds on the last
		got, err := tt.do()
		if !errors.Is(err, tt.wantErr) || (err == nil && got != tt.want) {
			t.Fatalf("%s: got %v, %v; want %v, %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
	ds := loadExamples(t).Datastores[0].Datastores
	changed, err := c.PublishDatastores(ctx, &ds)
	if err != nil || len(changed) != 2 {
		t.Fatalf("publish datastores file: %v, %v", changed, err)
	}
	if changed, err = c.PublishDatastores(ctx, &ds); err != nil || len(changed) != 0 {
		t.Fatalf("republish datastores file: %v, %v", changed, err)
	}
}

func TestSnapshotAndWatch(t *testing.T) {
	consul := testcluster.StartConsul(t)
	c := newClient(t, consul)
	ctx := context.Background()
	set := loadExamples(t)
	for _, s := range set.Services {
		publish(t, c, &s.Manifest)
	}
	if _, err := c.PublishDatastores(ctx, &set.Datastores[0].Datastores); err != nil {
		t.Fatal(err)
	}
	port := testcluster.TCPBackend(t) // the api example has a TCP health check
	o := register(t, c, InstanceSpec{Federation: "default", Service: "api", Node: "api-1", Address: "127.0.0.1", Port: port, Region: "eu"})
	waitRegistered(t, o)
	// Malformed entries written by hand: reported with their key, skipped.
	for key, value := range map[string]string{
		c.keys.instance("default", "api", "bad"): "{not json",
		c.keys.manifest("default", "broken"):     "[]",
		c.keys.inputs() + "stray":                "x",
	} {
		if _, err := consul.Client.KV().Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := c.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Manifests) != 4 || len(snap.Datastores) != 2 || len(snap.Instances) != 1 || len(snap.Skipped) != 3 {
		t.Fatalf("snapshot: %d manifests, %d datastores, %d instances, skipped %+v", len(snap.Manifests), len(snap.Datastores), len(snap.Instances), snap.Skipped)
	}
	in := snap.Instances[0]
	if in.ID != binding.InstanceID("api", "api-1", port) || in.Region != "eu" || in.Index != -1 || in.Provides["API_URL"] != fmt.Sprintf("http://127.0.0.1:%d/api", port) {
		t.Fatalf("instance = %+v", in)
	}
	for _, sk := range snap.Skipped {
		if !strings.HasPrefix(sk.Key, c.keys.inputs()) || sk.Reason == "" {
			t.Fatalf("skipped entry without key or reason: %+v", sk)
		}
	}

	// The watch returns when an input changes, with a newer index…
	type result struct {
		index uint64
		err   error
	}
	done := make(chan result, 1)
	go func() {
		idx, err := c.Watch(ctx, snap.Index)
		done <- result{idx, err}
	}()
	if _, err := c.SetDatastore(ctx, "default", "NEW_URL", "http://x"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.index <= snap.Index {
			t.Fatalf("watch: index %d (was %d), %v", r.index, snap.Index, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not return after a datastore change")
	}
	// …and a status write, outside the inputs, does not wake it.
	snap, _ = c.Snapshot(ctx)
	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := c.PutStatus(ctx, Status{Node: "web-1", Result: "ok", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if idx, err := c.Watch(wctx, snap.Index); err == nil || idx != snap.Index {
		t.Fatalf("watch woke on a status write: index %d, err %v", idx, err)
	}
}

func TestStatusesAndRollout(t *testing.T) {
	consul := testcluster.StartConsul(t)
	c := newClient(t, consul)
	ctx := context.Background()
	for _, node := range []string{"web-2", "web-1"} {
		if err := c.PutStatus(ctx, Status{Node: node, Result: "ok", Revision: 7, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := consul.Client.KV().Put(&api.KVPair{Key: c.keys.nodeStatus("web-3"), Value: []byte("nope")}, nil); err != nil {
		t.Fatal(err)
	}
	got, skipped, err := c.Statuses(ctx)
	if err != nil || len(got) != 2 || got[0].Node != "web-1" || got[1].Revision != 7 || len(skipped) != 1 {
		t.Fatalf("statuses = %+v, skipped %+v, %v", got, skipped, err)
	}

	g, err := c.Rollout("default", "www")
	if err != nil {
		t.Fatal(err)
	}
	release, err := g.Acquire(ctx, "web-1", 1)
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() {
		rel, err := g.Acquire(ctx, "web-2", 1)
		if err == nil {
			err = rel()
		}
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("second node took the only slot while the first held it (%v)", err)
	case <-time.After(time.Second):
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("second node never got the slot after release")
	}

	if h, err := g.Halted(ctx); err != nil || h != nil {
		t.Fatalf("fresh group halted: %+v, %v", h, err)
	}
	at := time.Now().UTC().Truncate(time.Second)
	if err := g.SetHalt(ctx, Halt{Node: "web-1", Reason: "health check failed", At: at}); err != nil {
		t.Fatal(err)
	}
	if h, err := g.Halted(ctx); err != nil || h == nil || h.Node != "web-1" || h.Reason != "health check failed" || !h.At.Equal(at) {
		t.Fatalf("halt = %+v, %v", h, err)
	}
	if was, err := g.Resume(ctx); err != nil || !was {
		t.Fatalf("resume: %v, %v", was, err)
	}
	if h, _ := g.Halted(ctx); h != nil {
		t.Fatalf("still halted after resume: %+v", h)
	}
}

func TestFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens here now
		c, err := New(WithAddress(addr), WithTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Snapshot(ctx)
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("error = %v; want one line naming %s", err, addr)
		}
	})
	t.Run("hanging server times out", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() { // accept and never answer
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
			}
		}()
		c, err := New(WithAddress(l.Addr().String()), WithTimeout(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := c.Snapshot(ctx); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "deadline") && !errors.Is(err, ErrUnreachable) {
				t.Fatalf("error = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a hanging Consul hung the client")
		}
	})
	t.Run("acl denied", func(t *testing.T) {
		consul := testcluster.StartConsul(t, testcluster.WithACLs("root"))
		ctx := context.Background()
		root, err := New(WithAddress(consul.Addr), WithToken("root"))
		if err != nil {
			t.Fatal(err)
		}
		publish(t, root, parseManifest(t, "id: svc\n"))
		readOnly := testcluster.CreateToken(t, consul, "root", `key_prefix "patchbay/" { policy = "read" }`)
		c, err := New(WithAddress(consul.Addr), WithToken(readOnly))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Manifest(ctx, "default", "svc"); err != nil {
			t.Fatalf("read with a read token: %v", err)
		}
		_, err = c.SetDatastore(ctx, "default", "A_URL", "x")
		if !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), "patchbay/registry/datastores/default/A_URL") {
			t.Fatalf("error = %v; want permission denied naming the key", err)
		}
		var m manifest.Manifest
		if pair, _, _ := consul.Client.KV().Get("patchbay/registry/manifests/default/svc", &api.QueryOptions{Token: "root"}); pair == nil || json.Unmarshal(pair.Value, &m) != nil || m.ID != "svc" {
			t.Fatal("denied write changed the stored manifest")
		}
	})
}
