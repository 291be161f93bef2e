package listener

import (
	"encoding/json"
	"testing"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/events"
	"github.com/patchbay/patchbay/manifest"
	"github.com/patchbay/patchbay/registry"
)

// currentWeb is inputs.current of web alone, without the source.
func currentWeb(in *inputs) ([]registry.HostedService, bool) {
	hosted, _, ok := in.current([]string{"web"})
	return hosted, ok
}

func TestInputsEvents(t *testing.T) {
	m := &manifest.Manifest{ID: "web", Federation: "default"}
	digest := binding.ManifestDigest(m)
	doc := func(rev uint64, manifestDigest string) json.RawMessage {
		b, _ := json.Marshal(binding.Binding{Federation: "default", Service: "web", Revision: rev, Manifest: manifestDigest})
		return b
	}
	stored := func(region string, rev uint64) *registry.StoredBinding {
		return &registry.StoredBinding{Federation: "default", Service: "web", Region: region, Value: doc(rev, digest), ModifyIndex: 100 + rev}
	}
	event := func(region string, rev uint64, body json.RawMessage) events.BindingsChanged {
		return events.BindingsChanged{Federation: "default", Service: "web", Region: region, Revision: rev, ModifyIndex: 100 + rev, Binding: body}
	}
	tests := []struct {
		name       string
		held       *registry.StoredBinding // what was read from Consul
		e          events.BindingsChanged
		wantRun    bool
		wantRead   bool   // the next run must read Consul
		wantRev    uint64 // revision held after, when not read
		nodeRegion string
	}{
		{"newer revision is applied", stored("", 4), event("", 5, doc(5, digest)), true, false, 5, ""},
		{"a revision gap is applied: events carry whole bindings", stored("", 4), event("", 9, doc(9, digest)), true, false, 9, ""},
		{"same revision is ignored", stored("", 4), event("", 4, doc(4, digest)), false, false, 4, ""},
		{"older revision is ignored", stored("", 4), event("", 3, doc(3, digest)), false, false, 4, ""},
		{"another region is ignored", stored("eu", 4), event("us", 5, doc(5, digest)), false, false, 4, "eu"},
		{"region-less binding while using the region's is ignored", stored("eu", 4), event("", 7, doc(7, digest)), false, false, 4, "eu"},
		{"the region's new binding replaces the region-less one", stored("", 4), event("eu", 1, doc(1, digest)), true, false, 1, "eu"},
		{"a deletion reads Consul", stored("", 4), event("", 0, nil), true, true, 0, ""},
		{"an oversized binding reads Consul", stored("", 4), event("", 5, nil), true, true, 0, ""},
		{"a manifest change reads Consul", stored("", 4), event("", 5, doc(5, "other")), true, true, 0, ""},
		{"a malformed body reads Consul", stored("", 4), event("", 5, json.RawMessage(`{"revision":`)), true, true, 0, ""},
		{"an event of a service not read yet runs, reading Consul for it", stored("", 4), events.BindingsChanged{Federation: "default", Service: "api", Revision: 1}, true, false, 4, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := newInputs()
			in.fromConsul([]registry.HostedService{{Service: "web", Manifest: m, ManifestIndex: 7, Binding: tc.held}}, in.readStart(), sourceConsul)
			if got, _ := in.event(tc.e, tc.nodeRegion); got != tc.wantRun {
				t.Errorf("event → run %v, want %v", got, tc.wantRun)
			}
			hosted, ok := currentWeb(in)
			if ok == tc.wantRead {
				t.Fatalf("current ok = %v, want the next run to read Consul: %v", ok, tc.wantRead)
			}
			if ok {
				if got := revisionOf(hosted[0].Binding); got != tc.wantRev {
					t.Errorf("revision held = %d, want %d", got, tc.wantRev)
				}
			}
		})
	}
}

// A Consul read that raced with a newer event keeps the event's binding.
func TestInputsConsulReadNeverGoesBack(t *testing.T) {
	m := &manifest.Manifest{ID: "web", Federation: "default"}
	doc := func(rev uint64) []byte {
		b, _ := json.Marshal(binding.Binding{Federation: "default", Service: "web", Revision: rev, Manifest: binding.ManifestDigest(m)})
		return b
	}
	in := newInputs()
	in.fromConsul([]registry.HostedService{{Service: "web", Manifest: m, Binding: &registry.StoredBinding{Value: doc(4)}}}, in.readStart(), sourceConsul)
	start := in.readStart()
	in.event(events.BindingsChanged{Federation: "default", Service: "web", Revision: 6, Binding: doc(6)}, "")
	in.fromConsul([]registry.HostedService{{Service: "web", Manifest: m, Binding: &registry.StoredBinding{Value: doc(5)}}}, start, sourceConsul)
	hosted, ok := currentWeb(in)
	if !ok || revisionOf(hosted[0].Binding) != 6 {
		t.Fatalf("after a read of revision 5 the listener holds %v (ok %v), want 6", hosted, ok)
	}
	// An event that needs a read (a manifest change) during a read keeps
	// the service stale: what was read is older than the event.
	start = in.readStart()
	in.event(events.BindingsChanged{Federation: "default", Service: "web", Revision: 7}, "") // too large to carry
	in.fromConsul([]registry.HostedService{{Service: "web", Manifest: m, Binding: &registry.StoredBinding{Value: doc(6)}}}, start, sourceConsul)
	if _, ok := currentWeb(in); ok {
		t.Fatal("a read that began before an event needing a read cleared it: the next run would not read Consul")
	}
	in.fromConsul([]registry.HostedService{{Service: "web", Manifest: m, Binding: &registry.StoredBinding{Value: doc(7)}}}, in.readStart(), sourceConsul)
	if hosted, ok := currentWeb(in); !ok || revisionOf(hosted[0].Binding) != 7 {
		t.Fatalf("after a read begun after the event the listener holds %v (ok %v), want 7", hosted, ok)
	}
	in.invalidate()
	if _, ok := currentWeb(in); ok {
		t.Fatal("after invalidate the next run does not read Consul")
	}
	if _, ok := currentWeb(newInputs()); ok {
		t.Fatal("a listener that read nothing yet does not read Consul")
	}
	// The first read of a service, begun before its first event (the node
	// just started): what it read is older than the event, so the next run
	// reads again instead of waiting for anti-entropy.
	in = newInputs()
	start = in.readStart()
	in.event(events.BindingsChanged{Federation: "default", Service: "web", Revision: 1, Binding: doc(1)}, "")
	in.fromConsul([]registry.HostedService{{Service: "web", Manifest: m}}, start, sourceConsul)
	if _, ok := currentWeb(in); ok {
		t.Fatal("a first read that began before the service's first event is trusted: the next run renders without the binding")
	}
}

func TestInputsHolds(t *testing.T) {
	m := &manifest.Manifest{ID: "web", Federation: "default"}
	doc, _ := json.Marshal(binding.Binding{Federation: "default", Service: "web", Revision: 5, Manifest: binding.ManifestDigest(m)})
	other, _ := json.Marshal(binding.Binding{Federation: "default", Service: "web", Revision: 5, Manifest: "forged"})
	in := newInputs()
	in.fromConsul([]registry.HostedService{{Service: "web", Manifest: m, ManifestIndex: 7, Binding: &registry.StoredBinding{Value: doc, ModifyIndex: 40}}}, in.readStart(), sourceConsul)
	tests := []struct {
		name string
		h    registry.HostedService
		want bool
	}{
		{"same indexes and content", registry.HostedService{Service: "web", ManifestIndex: 7, Binding: &registry.StoredBinding{Value: doc, ModifyIndex: 40}}, true},
		{"same indexes, other content", registry.HostedService{Service: "web", ManifestIndex: 7, Binding: &registry.StoredBinding{Value: other, ModifyIndex: 40}}, false},
		{"newer binding", registry.HostedService{Service: "web", ManifestIndex: 7, Binding: &registry.StoredBinding{Value: doc, ModifyIndex: 41}}, false},
		{"newer manifest", registry.HostedService{Service: "web", ManifestIndex: 8, Binding: &registry.StoredBinding{Value: doc, ModifyIndex: 40}}, false},
		{"binding gone", registry.HostedService{Service: "web", ManifestIndex: 7}, false},
		{"another region's binding", registry.HostedService{Service: "web", ManifestIndex: 7, Binding: &registry.StoredBinding{Region: "eu", ModifyIndex: 40}}, false},
		{"a service not held", registry.HostedService{Service: "api"}, false},
	}
	for _, tc := range tests {
		if got := in.holds(tc.h); got != tc.want {
			t.Errorf("%s: holds = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A run's source says who brought its inputs: anti-entropy when its read
// brought any of them, until events replace them.
func TestInputsSource(t *testing.T) {
	m := &manifest.Manifest{ID: "web", Federation: "default"}
	doc := func(service string, rev uint64) []byte {
		b, _ := json.Marshal(binding.Binding{Federation: "default", Service: service, Revision: rev, Manifest: binding.ManifestDigest(m)})
		return b
	}
	read := func(rev uint64) []registry.HostedService {
		return []registry.HostedService{
			{Service: "web", Manifest: m, Binding: &registry.StoredBinding{Value: doc("web", rev)}},
			{Service: "api", Manifest: m, Binding: &registry.StoredBinding{Value: doc("api", rev)}},
		}
	}
	in := newInputs()
	steps := []struct {
		name string
		do   func()
		want string
	}{
		{"a run's read, held for the next run", func() { in.fromConsul(read(1), in.readStart(), sourceConsul) }, sourceEvents},
		{"anti-entropy's read", func() { in.fromConsul(read(2), in.readStart(), sourceAntiEntropy) }, sourceAntiEntropy},
		{"an event for one service", func() {
			in.event(events.BindingsChanged{Federation: "default", Service: "web", Revision: 3, Binding: doc("web", 3)}, "")
		}, sourceAntiEntropy},
		{"an event for the other", func() {
			in.event(events.BindingsChanged{Federation: "default", Service: "api", Revision: 3, Binding: doc("api", 3)}, "")
		}, sourceEvents},
	}
	for _, step := range steps {
		step.do()
		if _, got, ok := in.current([]string{"web", "api"}); !ok || got != step.want {
			t.Errorf("after %s: source %q (ok %v), want %q", step.name, got, ok, step.want)
		}
	}
}

// Consul is the source of truth: what an event brought is held only until
// a Consul read that began after it, which replaces it unless it confirms
// it, whatever the revisions say. Only a read racing with an event (the
// event arrived during the read) keeps the event's newer revision, until
// the next read.
func TestInputsConsulIsTheTruth(t *testing.T) {
	m := &manifest.Manifest{ID: "web", Federation: "default"}
	doc := func(rev uint64, password string) []byte {
		b, _ := json.Marshal(binding.Binding{Federation: "default", Service: "web", Revision: rev, Manifest: binding.ManifestDigest(m),
			Vars: map[string]binding.Var{"DB_PASSWORD": {Select: "one", Value: password}}})
		return b
	}
	consul := func(rev, index uint64, password string) []registry.HostedService {
		return []registry.HostedService{{Service: "web", Manifest: m, ManifestIndex: 7, Binding: &registry.StoredBinding{Federation: "default", Service: "web", Value: doc(rev, password), ModifyIndex: index}}}
	}
	event := func(rev, index uint64, password string) events.BindingsChanged {
		return events.BindingsChanged{Federation: "default", Service: "web", Revision: rev, ModifyIndex: index, Binding: doc(rev, password)}
	}
	tests := []struct {
		name string
		// held: a run's read of Consul, then an event (if any) applied
		// before the next read begins, or during it when racing
		held    []registry.HostedService
		e       *events.BindingsChanged
		racing  bool
		read    []registry.HostedService // what the next read finds in Consul
		wantRev uint64
		wantPw  string
	}{
		{"a forged future revision is replaced by the next read", consul(1, 26, "pw-1"), new(event(1000, 26, "FORGED")), false, consul(1, 26, "pw-1"), 1, "pw-1"},
		{"a forged future revision is replaced by Consul's newer binding", consul(1, 26, "pw-1"), new(event(1000, 26, "FORGED")), false, consul(2, 30, "rotated"), 2, "rotated"},
		{"Consul's revision going backwards is followed", consul(5, 50, "pw-v5"), nil, false, consul(3, 60, "pw-v3"), 3, "pw-v3"},
		{"an event the read confirms is kept", consul(1, 26, "pw-1"), new(event(2, 30, "pw-2")), false, consul(2, 30, "pw-2"), 2, "pw-2"},
		{"an event racing with the read is kept", consul(1, 26, "pw-1"), new(event(2, 30, "pw-2")), true, consul(1, 26, "pw-1"), 2, "pw-2"},
		{"a racing event older than the read is replaced", consul(1, 26, "pw-1"), new(event(2, 30, "pw-2")), true, consul(3, 34, "pw-3"), 3, "pw-3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := newInputs()
			in.fromConsul(tc.held, in.readStart(), sourceConsul)
			start := in.readStart() // a racing read begins before the event
			if tc.e != nil {
				in.event(*tc.e, "")
			}
			if !tc.racing {
				start = in.readStart()
			}
			in.fromConsul(tc.read, start, sourceAntiEntropy)
			hosted, ok := currentWeb(in)
			if !ok {
				t.Fatal("the read left web stale")
			}
			var b binding.Binding
			if err := json.Unmarshal(hosted[0].Binding.Value, &b); err != nil {
				t.Fatal(err)
			}
			if b.Revision != tc.wantRev || b.Vars["DB_PASSWORD"].Value != tc.wantPw || revisionOf(hosted[0].Binding) != tc.wantRev {
				t.Errorf("after the read the listener holds revision %d with %q, want %d with %q", b.Revision, b.Vars["DB_PASSWORD"].Value, tc.wantRev, tc.wantPw)
			}
		})
	}
	// A racing event is kept only until a read that began after it.
	in := newInputs()
	in.fromConsul(consul(1, 26, "pw-1"), in.readStart(), sourceConsul)
	start := in.readStart()
	in.event(event(1000, 26, "FORGED"), "")
	in.fromConsul(consul(1, 26, "pw-1"), start, sourceAntiEntropy)
	in.fromConsul(consul(1, 26, "pw-1"), in.readStart(), sourceAntiEntropy)
	if hosted, ok := currentWeb(in); !ok {
		t.Fatal("the read left web stale")
	} else if got := revisionOf(hosted[0].Binding); got != 1 {
		t.Fatalf("a read begun after a racing forged event left revision %d held, want 1", got)
	}
}

// A forged event that copies Consul's modify index is told apart by its
// content: anti-entropy sees that Consul does not confirm it.
func TestInputsForgedSameModifyIndex(t *testing.T) {
	m := &manifest.Manifest{ID: "web", Federation: "default"}
	doc := func(rev uint64, password string) []byte {
		b, _ := json.Marshal(binding.Binding{Federation: "default", Service: "web", Revision: rev, Manifest: binding.ManifestDigest(m),
			Vars: map[string]binding.Var{"DB_PASSWORD": {Select: "one", Value: password}}})
		return b
	}
	inConsul := registry.HostedService{Service: "web", Manifest: m, ManifestIndex: 7, Binding: &registry.StoredBinding{Federation: "default", Service: "web", Value: doc(1, "pw-1"), ModifyIndex: 26}}
	in := newInputs()
	in.fromConsul([]registry.HostedService{inConsul}, in.readStart(), sourceConsul)
	if !in.holds(inConsul) {
		t.Fatal("the listener does not hold what it just read")
	}
	start := in.readStart() // anti-entropy's read races with the event
	in.event(events.BindingsChanged{Federation: "default", Service: "web", Revision: 1000, ModifyIndex: 26, Binding: doc(1000, "FORGED")}, "")
	if in.holds(inConsul) {
		t.Error("after a forged event with Consul's modify index the listener still holds what Consul holds")
	}
	if in.disputes(inConsul, start) {
		t.Error("a read racing with the event disputes it: the event is newer than the read")
	}
	if !in.disputes(inConsul, in.readStart()) {
		t.Error("a read begun after the forged event does not dispute it: anti-entropy would not replace it")
	}
	restored := inConsul
	restored.Binding = &registry.StoredBinding{Federation: "default", Service: "web", Value: doc(1, "pw-restored"), ModifyIndex: 60}
	in.fromConsul([]registry.HostedService{inConsul}, in.readStart(), sourceAntiEntropy)
	if in.disputes(inConsul, in.readStart()) {
		t.Error("Consul disputes what was just read from it")
	}
	if !in.disputes(restored, in.readStart()) {
		t.Error("a binding Consul rewrote at a lower revision is not disputed")
	}
	in.invalidate()
	if in.disputes(restored, in.readStart()) {
		t.Error("a stale service is disputed: the next run reads Consul anyway")
	}
}
