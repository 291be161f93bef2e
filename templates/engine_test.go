package templates

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// engineCases are templates that reach every part of the state Execute
// builds afresh and a parsed engine resets: scratch, lookups and their
// rounds, env, define/executeTemplate, Sprig, patchbay's functions, and
// the errors of each stage.
var engineCases = map[string]string{
	"scratch":            `{{ scratch.Set "a" "x" }}{{ if scratch.Key "b" }}leaked{{ end }}{{ scratch.Set "b" "y" }}{{ scratch.Get "a" }}`,
	"lookups":            `{{ key "x" }} {{ key (key "pointer") }} {{ keyOrDefault "nope" "def" }}`,
	"missing key":        `{{ key "nope" }}`,
	"env":                `{{ env "PORT" }} {{ envOrDefault "NOPE" "d" }} {{ env "DATABASE_URL" }}`,
	"mustEnv":            `{{ mustEnv "NOPE" }}`,
	"define and execute": `{{ define "t" }}<{{ . }}>{{ end }}{{ executeTemplate "t" "a" }}{{ template "t" "b" }}`,
	"sprig and helpers":  `{{ "a,b" | split "," | join ";" }} {{ sprig_upper "x" }} {{ toJSON (explodeMap (dict "a/b" "c" | toJSON | parseJSON)) }}`,
	"patchbay":           `{{ with patchbay }}{{ .Service }} {{ .Revision }}{{ end }} {{ binding "DATABASE_URL" | shellQuote }} {{ range upstreams "ROUTES" }}{{ . }};{{ end }}`,
	"syntax":             "\n{{ binding \"DATABASE_URL\" ",
	"unknown function":   `{{ nosuch }}`,
	"execution":          `{{ index "abc" 7 }}`,
	"denied":             `{{ plugin "/bin/echo" "hi" }}`,
	"missingkey":         `{{ (dict "a" 1).b.c }}`,
}

// TestEngineMatchesExecute renders every builtin and every engineCases
// template through parsed engines (Render) and through consul-template's
// per-execution path (renderEach), for two different data in turn, and
// wants the same bytes and the same errors: what one render leaves in an
// engine must not reach the next.
func TestEngineMatchesExecute(t *testing.T) {
	if !parseOnce() {
		t.Fatalf("parsed engines are off: this build's consul-template is not %s, the version engine.go mirrors", ctVersion)
	}
	cases := map[string]string{}
	for name, c := range engineCases {
		cases[name] = c
	}
	for _, name := range Builtins() {
		c, err := Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		cases["builtin:"+name] = c
	}
	second := fixture("/tmp/patchbay-golden")
	second.Binding.Revision = 43
	second.Environment["PORT"] = "9090"
	datas := []Data{fixture("/tmp/patchbay-golden"), second, testData()}
	kv := map[string]string{"x": "on", "pointer": "target", "target": "value"}
	for name, contents := range cases {
		t.Run(name, func(t *testing.T) {
			r := NewRenderer(WithFetcher(newFakeKV(kv)))
			for i, d := range datas {
				want, wantErr := r.renderEach(context.Background(), "t.conf", contents, d)
				got, gotErr := r.Render(context.Background(), "t.conf", contents, d)
				if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
					t.Fatalf("data %d: error %v, Execute's path gives %v", i, gotErr, wantErr)
				}
				for _, s := range []error{ErrTemplate, ErrLookup, ErrUnquotable} {
					if errors.Is(gotErr, s) != errors.Is(wantErr, s) {
						t.Fatalf("data %d: errors.Is(%v, %v) differs from Execute's path", i, gotErr, s)
					}
				}
				if string(got) != string(want) {
					t.Fatalf("data %d: parsed engine rendered\n%s\nExecute's path\n%s", i, got, want)
				}
			}
		})
	}
}

// TestEngineVersion holds go.mod's consul-template to the version whose
// funcMapInput engine.go mirrors: after an upgrade, compare the struct in
// its template/template.go with ctFuncMapInput, then update ctVersion.
func TestEngineVersion(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := "github.com/hashicorp/consul-template " + ctVersion + "\n"
	if !strings.Contains(string(mod), want) {
		t.Fatalf("go.mod does not require %q: check ctFuncMapInput against the new consul-template's funcMapInput, then set ctVersion", strings.TrimSpace(want))
	}
}

// TestEngineConcurrent renders one template from many goroutines at once,
// each with its own data: engines are shared through the pool, never
// between two renders at the same time.
func TestEngineConcurrent(t *testing.T) {
	const tmpl = `{{ scratch.Set "s" (env "ID") }}{{ with patchbay }}{{ .Revision }}{{ end }}-{{ scratch.Get "s" }}`
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Go(func() {
			d := testData()
			d.Binding.Revision = uint64(i)
			d.Environment = map[string]string{"ID": fmt.Sprint(i)}
			for range 20 {
				out, err := NewRenderer().Render(context.Background(), "c.conf", tmpl, d)
				if want := fmt.Sprintf("%d-%d", i, i); err != nil || string(out) != want {
					errs[i] = fmt.Errorf("goroutine %d: got %q (%v), want %q", i, out, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// TestEngineForgetsLookups: every render looks its keys up afresh, as
// Execute's new brain per render does; an engine must not answer a render
// from the lookups of the one before.
func TestEngineForgetsLookups(t *testing.T) {
	kv := newFakeKV(map[string]string{"x": "on"})
	r := NewRenderer(WithFetcher(kv))
	for i, want := range []string{"on", "off", "again"} {
		kv.mu.Lock()
		kv.values["x"] = want
		kv.mu.Unlock()
		got, err := r.Render(context.Background(), "k.conf", `{{ key "x" }}`, testData())
		if err != nil || string(got) != want {
			t.Fatalf("render %d: got %q (%v), want %q", i, got, err, want)
		}
	}
	if kv.total() != 3 {
		t.Fatalf("%d fetches for 3 renders, want 3", kv.total())
	}
}
