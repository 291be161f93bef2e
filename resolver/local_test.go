package resolver

import (
	"errors"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

func TestLocalValue(t *testing.T) {
	cases := []struct {
		value, want, mode string
		bad               bool
	}{
		{value: "http://10.0.0.5:8080/api/v1?x=1", want: "http://127.0.0.1:7001/api/v1?x=1", mode: binding.LocalHTTP},
		{value: "http://api.internal/api", want: "http://127.0.0.1:7001/api", mode: binding.LocalHTTP},
		{value: "postgres://app:secret@10.0.0.9:5432/app", want: "postgres://app:secret@127.0.0.1:7001/app", mode: binding.LocalTCP},
		{value: "https://10.0.0.5:8443/", want: "https://127.0.0.1:7001/", mode: binding.LocalTCP},
		{value: "10.0.0.7:6379", want: "127.0.0.1:7001", mode: binding.LocalTCP},
		{value: "just-a-word", bad: true},
		{value: "http:///nohost", bad: true},
	}
	for _, c := range cases {
		t.Run(c.value, func(t *testing.T) {
			got, mode, err := LocalValue(c.value, 7001)
			if c.bad {
				if !errors.Is(err, ErrLocalValue) {
					t.Fatalf("LocalValue(%q) = %q, %v; want ErrLocalValue", c.value, got, err)
				}
				return
			}
			if err != nil || got != c.want || mode != c.mode {
				t.Fatalf("LocalValue(%q) = %q %q %v; want %q %q", c.value, got, mode, err, c.want, c.mode)
			}
		})
	}
}

func TestBackendAddr(t *testing.T) {
	cases := []struct{ value, want string }{
		{"http://10.0.0.5:8080/api", "10.0.0.5:8080"},
		{"http://10.0.0.5/api", "10.0.0.5:80"},
		{"https://10.0.0.5", "10.0.0.5:443"},
		{"postgres://u:p@10.0.0.9:5432/db", "10.0.0.9:5432"},
		{"10.0.0.7:6379", "10.0.0.7:6379"},
		{"postgres://10.0.0.9/db", ""},
		{"nothing", ""},
	}
	for _, c := range cases {
		got, err := BackendAddr(c.value)
		if c.want == "" {
			if err == nil {
				t.Errorf("BackendAddr(%q) = %q; want an error", c.value, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("BackendAddr(%q) = %q, %v; want %q", c.value, got, err, c.want)
		}
	}
}

// localSnap is a consumer www requiring API_URL via local, providers api
// (local_port 7001) on the given nodes and regions.
func localSnap(port int, nodes map[string]string) *binding.Snapshot {
	req := one("API_URL")
	req.Via = manifest.ViaLocal
	api := svc("", "api", false, nil)
	api.Provides = map[string]string{"API_URL": "http://{HOST}:{PORT}/v1"}
	api.LocalPort = port
	snap := &binding.Snapshot{Manifests: []manifest.Manifest{svc("", "www", false, map[string]manifest.Requirement{"API_URL": req}), api}}
	for node, reg := range nodes {
		in := inst("", "api", node, reg, false)
		in.Provides["API_URL"] = "http://10.0.0." + node + ":80/v1"
		snap.Instances = append(snap.Instances, in)
	}
	snap.Instances = append(snap.Instances, inst("", "www", "9", "east", false))
	sortSnapshot(snap)
	return snap
}

// TestResolveLocalValueStable: the value of a via-local var names the
// local balancer whatever providers live, and the providers are every
// admitted one, with region preference applied.
func TestResolveLocalValueStable(t *testing.T) {
	sets := []map[string]string{
		{"1": "east", "2": "east"},
		{"2": "east"},
		{"3": "east", "4": "west"},
		{"4": "west"},
	}
	wantProviders := []int{2, 1, 1, 1} // prefer-local keeps the east one when there is one
	for i, nodes := range sets {
		res := Resolve(localSnap(7001, nodes))
		b, ok := res.Lookup("default", "www", "east")
		if !ok {
			t.Fatal("no binding for www in east")
		}
		v := b.Vars["API_URL"]
		if !v.Resolved || v.Value != "http://127.0.0.1:7001/v1" {
			t.Fatalf("set %d: API_URL = %+v; want resolved http://127.0.0.1:7001/v1", i, v)
		}
		if v.Local == nil || v.Local.Port != 7001 || v.Local.Mode != binding.LocalHTTP {
			t.Fatalf("set %d: Local = %+v; want port 7001 http", i, v.Local)
		}
		if len(v.Providers) != wantProviders[i] {
			t.Fatalf("set %d: %d providers %+v; want %d", i, len(v.Providers), v.Providers, wantProviders[i])
		}
	}
}

func TestResolveLocalUnresolved(t *testing.T) {
	cases := []struct {
		name   string
		snap   *binding.Snapshot
		reason string
	}{
		{"no local_port", localSnap(0, map[string]string{"1": "east"}), "sets no local_port"},
		{"no provider", localSnap(7001, nil), "API_URL"},
		{"ports disagree", func() *binding.Snapshot {
			s := localSnap(7001, map[string]string{"1": "east"})
			other := svc("", "api2", false, nil, "API_URL")
			other.LocalPort = 7002
			s.Manifests = append(s.Manifests, other)
			sortSnapshot(s)
			return s
		}(), "disagree on local_port (api 7001, api2 7002)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _ := Resolve(c.snap).Lookup("default", "www", "east")
			if b.Vars["API_URL"].Resolved || len(b.Unresolved) != 1 || !strings.Contains(b.Unresolved[0].Reason, c.reason) {
				t.Fatalf("var %+v unresolved %+v; want unresolved with %q", b.Vars["API_URL"], b.Unresolved, c.reason)
			}
		})
	}
}

// TestLocalValueErrorsHideValue: a value may hold a password; errors and
// reasons, which reach status and logs, never quote it.
func TestLocalValueErrorsHideValue(t *testing.T) {
	for _, v := range []string{"s3cr3t-token", "redis://:s3cr3t@", "user:s3cr3t"} {
		_, _, err1 := LocalValue(v, 7001)
		_, err2 := BackendAddr(v)
		for _, err := range []error{err1, err2} {
			if err == nil || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("%q: error %v; want one that does not quote the value", v, err)
			}
		}
	}
}
