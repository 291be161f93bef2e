package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchers: a watcher counts once, at the first message naming the
// awaited provider, in either of Consul's encodings; other messages and
// an earlier provider's do not count.
func TestWatchers(t *testing.T) {
	tests := []struct {
		name string
		way  string
		body string
		seen bool
	}{
		{"consul, compact", wayConsul, `[{"Service":{"ID":"p","Port":20007,"Address":"127.0.0.1"}}]`, true},
		{"consul, indented by -dev", wayConsul, "[{\n \"Service\": {\n  \"Port\": 20007,\n", true},
		{"consul, another port", wayConsul, `[{"Service":{"Port":200071,"X":1}}]`, false},
		{"consul, an index of the same digits", wayConsul, `{"ModifyIndex":20007,}`, false},
		{"nats event", wayPatchbay, `{"binding":{"vars":{"UPSTREAMS":{"value":"http://127.0.0.1:20007"}}}}`, true},
		{"nats event without it", wayPatchbay, `{"binding":{"vars":{"UPSTREAMS":{"value":"http://127.0.0.1:20006"}}}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWatchers(2)
			w.saw(0, []byte(tt.body)) // before expect: nothing is awaited yet
			start := time.Now()
			w.expect(markers(tt.way, 20007)...)
			w.saw(0, []byte(tt.body))
			if got := w.seen[0].Load() != 0; got != tt.seen {
				t.Fatalf("seen = %v, want %v", got, tt.seen)
			}
			if w.all() {
				t.Fatal("all() with watcher 1 never notified")
			}
			ds, missing := w.latencies(start)
			if want := 2 - len(ds); missing != want || (tt.seen && ds[0] < 0) {
				t.Fatalf("latencies %v, %d missing; want %d missing", ds, missing, want)
			}
		})
	}
}

// TestProcCounters reads this process's written bytes, CPU time and
// context switches, and sees them grow.
func TestProcCounters(t *testing.T) {
	pid := os.Getpid()
	w0, err := writtenBytes(pid)
	if err != nil {
		t.Fatal(err)
	}
	u0, err := threadsUsage(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(t.TempDir(), "x"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		done := make(chan struct{})
		go func() { time.Sleep(time.Millisecond); close(done) }() // a thread that blocks is a switch
		<-done
	}
	w1, err := writtenBytes(pid)
	if err != nil {
		t.Fatal(err)
	}
	for x := 0; x < 1e6; x++ { // some CPU time to see
		_ = fmt.Sprint(x)
	}
	u1, err := threadsUsage(pid)
	if err != nil {
		t.Fatal(err)
	}
	if w1-w0 < 4096 {
		t.Errorf("wchar grew by %d after writing 4096 bytes", w1-w0)
	}
	if u1.switches <= u0.switches {
		t.Errorf("context switches %d then %d: no growth after ten sleeps", u0.switches, u1.switches)
	}
	if u1.cpu <= u0.cpu {
		t.Errorf("CPU time %v then %v: no growth after a million Sprints", u0.cpu, u1.cpu)
	}
}

// TestRescanCountsFromModTime: after an inotify overflow a file already
// holding the line counts from when it was written, never before the
// target's start, not from the rescan.
func TestRescanCountsFromModTime(t *testing.T) {
	o, err := newObserver()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = o.w.Close() }()
	dir := t.TempDir()
	t0 := time.Now().Add(-time.Minute)
	tests := []struct {
		name    string
		written time.Time
		want    time.Duration // after t0
	}{
		{"written after the start", t0.Add(3 * time.Second), 3 * time.Second},
		{"written before the start counts from the start", t0.Add(-time.Hour), 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, string(rune('a'+i)))
			if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := o.add(path); err != nil {
				t.Fatal(err)
			}
			tg := o.expect("new\n", t0)
			defer o.drop(tg)
			if err := os.WriteFile(path, []byte("new\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(path, tt.written, tt.written); err != nil {
				t.Fatal(err)
			}
			o.rescan()
			ds, missing := o.latencies(tg, []string{path})
			if missing != 0 || ds[0] != tt.want {
				t.Fatalf("latency %v (%d missing), want %v", ds, missing, tt.want)
			}
		})
	}
}
