package templates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	dep "github.com/hashicorp/consul-template/dependency"
	"github.com/patchbay/patchbay/binding"
)

// testData is a small service: a resolved, an optional and an unresolved
// requirement, one select-all requirement, and an environment that shares
// a name with a requirement.
func testData() Data {
	return Data{
		Service: "app", Federation: "default", Region: "eu",
		Environment: map[string]string{"PORT": "8080", "DATABASE_URL": "from-environment"},
		Binding: &binding.Binding{
			Federation: "default", Service: "app", Region: "eu", Revision: 7,
			Vars: map[string]binding.Var{
				"DATABASE_URL": {Select: "one", Value: "postgres://db:5432/app", Resolved: true},
				"CACHE_URL":    {Select: "one", Optional: true},
				"QUEUE_URL":    {Select: "one"},
				"ROUTES":       {Select: "all", Resolved: true, Providers: routeProviders()},
			},
			Unresolved: []binding.Unresolved{{Var: "QUEUE_URL", Key: "QUEUE_URL", Reason: "no instance of queue is passing its checks"}},
		},
	}
}

// routeProviders come in the resolver's order, by instance, which is not
// the order of their keys.
func routeProviders() []binding.Provider {
	p := func(key, instance, url string, public bool) binding.Provider {
		return binding.Provider{Key: key, Value: url, Instance: instance, Service: strings.Split(instance, "@")[0], Port: 80, Public: public}
	}
	return []binding.Provider{
		p("WWW_URL", "front@n1:80", "http://10.0.0.1:80", true),
		p("WWW_URL", "front@n2:80", "http://10.0.0.2:80/", false),
		p("READONLY_API_URL", "replica@n3:80", "http://10.0.0.3:80", true),
		p("API_URL", "svc@n4:80", "http://10.0.0.4:80/v1/", true),
	}
}

// withoutUnresolved drops the unresolved requirement, for functions that
// read every requirement.
func withoutUnresolved(d *Data) { delete(d.Binding.Vars, "QUEUE_URL") }

func withRoutes(least int, ps ...binding.Provider) func(*Data) {
	return func(d *Data) {
		d.Min = least
		d.Binding.Vars["ROUTES"] = binding.Var{Select: "all", Resolved: true, Providers: ps}
	}
}

// renderCase is one template rendered from testData after edit. With
// neither is nor msg set the render must give want; otherwise it must fail
// with an error wrapping is and containing every msg.
type renderCase struct {
	name string
	edit func(*Data)
	tmpl string
	want string
	is   error
	msg  []string
}

func runCases(t *testing.T, tests []renderCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testData()
			if tt.edit != nil {
				tt.edit(&d)
			}
			got, err := NewRenderer().Render(context.Background(), "test.conf", tt.tmpl, d)
			checkRender(t, string(got), err, tt.want, tt.is, tt.msg...)
		})
	}
}

func checkRender(t *testing.T, got string, err error, want string, is error, msg ...string) {
	t.Helper()
	if is == nil && msg == nil {
		if err != nil {
			t.Fatalf("render failed: %v", err)
		}
		if got != want {
			t.Fatalf("got  %q\nwant %q", got, want)
		}
		return
	}
	if err == nil {
		t.Fatalf("render succeeded with %q, want an error", got)
	}
	if is != nil && !errors.Is(err, is) {
		t.Fatalf("error %q does not wrap %q", err, is)
	}
	for _, m := range msg {
		if !strings.Contains(err.Error(), m) {
			t.Fatalf("error %q does not mention %q", err, m)
		}
	}
}

func TestBinding(t *testing.T) {
	runCases(t, []renderCase{
		{name: "resolved", tmpl: `{{ binding "DATABASE_URL" }}`, want: "postgres://db:5432/app"},
		{name: "optional unresolved is empty", tmpl: `[{{ binding "CACHE_URL" }}]`, want: "[]"},
		{
			name: "required unresolved", tmpl: `{{ binding "QUEUE_URL" }}`, is: ErrUnresolved,
			msg: []string{"template test.conf: ", "QUEUE_URL", "no instance of queue is passing its checks"},
		},
		{
			name: "required unresolved without a reason", edit: func(d *Data) { d.Binding.Unresolved = nil },
			tmpl: `{{ binding "QUEUE_URL" }}`, is: ErrUnresolved, msg: []string{"QUEUE_URL", "no live provider"},
		},
		{
			name: "unknown", tmpl: `{{ binding "NOPE" }}`, is: ErrUnknownVar,
			msg: []string{`"NOPE"`, "service app", "[CACHE_URL DATABASE_URL QUEUE_URL ROUTES]"},
		},
		{
			name: "no binding at all", edit: func(d *Data) { d.Binding = nil },
			tmpl: `{{ binding "DATABASE_URL" }}`, is: ErrUnknownVar, msg: []string{"[]"},
		},
		{
			name: "patchbay info", tmpl: `{{ with patchbay }}{{ .Service }} {{ .Federation }} {{ .Region }} {{ .Revision }}{{ end }}`,
			want: "app default eu 7",
		},
	})
}

func TestBindings(t *testing.T) {
	const all = `{{ range $k, $v := bindings }}{{ $k }}={{ $v }};{{ end }}`
	runCases(t, []renderCase{
		{
			name: "requirements win over the environment", edit: withoutUnresolved, tmpl: all,
			want: "CACHE_URL=;DATABASE_URL=postgres://db:5432/app;PORT=8080;ROUTES=;",
		},
		{name: "environment only without a binding", edit: func(d *Data) { d.Binding = nil }, tmpl: all, want: "DATABASE_URL=from-environment;PORT=8080;"},
		{name: "nothing at all", edit: func(d *Data) { d.Binding, d.Environment = nil, nil }, tmpl: all, want: ""},
		{name: "an unresolved requirement fails", tmpl: all, is: ErrUnresolved, msg: []string{"QUEUE_URL"}},
		{name: "missing map key fails", edit: withoutUnresolved, tmpl: `{{ (bindings).NOPE }}`, is: ErrTemplate, msg: []string{"NOPE"}},
	})
}

func TestUpstreams(t *testing.T) {
	providers := []binding.Provider{
		// The URL's host and port win over the instance's registered address.
		{
			Key: "API_URL", Value: "http://10.0.0.1:8080/v1/", Service: "api", Instance: "api@n1:8080",
			Node: "n1", Address: "192.0.2.1", Port: 1234, Region: "eu", Public: true,
		},
		{Key: "API_URL", Value: "http://[fd00::2]:9090", Service: "api", Instance: "api@n2:9090", Address: "fd00::2", Port: 9090},
		// Not a URL: the registered address is used.
		{Key: "API_URL", Value: "10.0.0.3:7000", Service: "api", Instance: "api@n3:7000", Address: "10.0.0.3", Port: 7000},
		{Key: "API_URL", Value: "http://evil;rm:80/", Instance: "evil@n4:80", Port: 80},
		{Key: "API_URL", Value: "http://10.0.0.5:80/a b", Instance: "space@n5:80", Port: 80},
		{Key: "API_URL", Value: "http://10.0.0.6:80/x{y}", Instance: "brace@n6:80", Port: 80},
		{Key: "API_URL", Value: "http://10.0.0.7:70000/", Instance: "port@n7:80", Port: 80},
		{Key: "API_URL", Value: "http://10.0.0.8:80/%7Breturn%7D", Instance: "escaped@n8:80", Port: 80},
		{Key: "API_URL", Value: "https://legacy.example.com", Instance: "tls@n9"},
		{Key: "API_URL", Value: "http://10.0.0.9:80/a;b", Instance: "semicolon@n9:80", Port: 80},
		{Key: "API_URL", Value: "redis://cache.internal", Instance: "redis@n10"}, // no port known
	}
	want := []Upstream{
		{
			Name: "api_n1_8080", Scheme: "http", Host: "10.0.0.1", Port: 8080, HostPort: "10.0.0.1:8080", URL: "http://10.0.0.1:8080/v1/",
			Path: "/v1", Key: "API_URL", Service: "api", Instance: "api@n1:8080", Node: "n1", Region: "eu", Public: true,
		},
		{
			Name: "api_n2_9090", Scheme: "http", Host: "fd00::2", Port: 9090, HostPort: "[fd00::2]:9090", URL: "http://[fd00::2]:9090",
			Key: "API_URL", Service: "api", Instance: "api@n2:9090",
		},
		{
			Name: "api_n3_7000", Host: "10.0.0.3", Port: 7000, HostPort: "10.0.0.3:7000", URL: "10.0.0.3:7000",
			Key: "API_URL", Service: "api", Instance: "api@n3:7000",
		},
		// Paths are kept escaped, so a space or brace cannot end a directive.
		{
			Name: "space_n5_80", Scheme: "http", Host: "10.0.0.5", Port: 80, HostPort: "10.0.0.5:80", URL: "http://10.0.0.5:80/a b",
			Path: "/a%20b", Key: "API_URL", Instance: "space@n5:80",
		},
		{
			Name: "brace_n6_80", Scheme: "http", Host: "10.0.0.6", Port: 80, HostPort: "10.0.0.6:80", URL: "http://10.0.0.6:80/x{y}",
			Path: "/x%7By%7D", Key: "API_URL", Instance: "brace@n6:80",
		},
		{
			Name: "escaped_n8_80", Scheme: "http", Host: "10.0.0.8", Port: 80, HostPort: "10.0.0.8:80", URL: "http://10.0.0.8:80/%7Breturn%7D",
			Path: "/%7Breturn%7D", Key: "API_URL", Instance: "escaped@n8:80",
		},
		// No port: the scheme's.
		{
			Name: "tls_n9", Scheme: "https", Host: "legacy.example.com", Port: 443, HostPort: "legacy.example.com:443", URL: "https://legacy.example.com",
			Key: "API_URL", Instance: "tls@n9",
		},
	}
	d := testData()
	withRoutes(0, providers...)(&d)
	out, err := NewRenderer().Render(context.Background(), "test.json", `{{ upstreams "ROUTES" | toJSON }}`, d)
	if err != nil {
		t.Fatal(err)
	}
	var got []Upstream
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("upstreams:\n got %+v\nwant %+v", got, want)
	}
}

func TestRoutes(t *testing.T) {
	const list = `{{ range routes "ROUTES" }}{{ .Name }}|{{ .ID }}|{{ .Key }}|{{ .Path }}|{{ .Public }}|` +
		`{{ range $i, $u := .Upstreams }}{{ if $i }},{{ end }}{{ $u.HostPort }}{{ end }}` + "\n{{ end }}"
	runCases(t, []renderCase{
		{
			name: "grouped by key, sorted by key", tmpl: list,
			want: "api|api|API_URL|/v1|true|10.0.0.4:80\n" +
				"readonly-api|readonly_api|READONLY_API_URL||true|10.0.0.3:80\n" +
				"www|www|WWW_URL||false|10.0.0.1:80,10.0.0.2:80\n",
		},
		{
			name: "unsafe providers are left out",
			edit: withRoutes(1,
				binding.Provider{Key: "WWW_URL", Value: "http://10.0.0.1:80", Instance: "a@n1:80"},
				binding.Provider{Key: "WWW_URL", Value: "http://evil;rm:80/", Instance: "b@n2:80"},
				binding.Provider{Key: "EVIL_URL", Value: "http://10.0.0.3:80/x;return", Instance: "c@n3:80"},
			),
			tmpl: list, want: "www|www|WWW_URL||false|10.0.0.1:80\n",
		},
	})
}

func TestMinGuard(t *testing.T) {
	good := binding.Provider{Key: "WWW_URL", Value: "http://10.0.0.1:80", Instance: "a@n1:80"}
	evil := binding.Provider{Key: "WWW_URL", Value: "http://evil;rm:80/", Instance: "b@n2:80"}
	const ups = `{{ range upstreams "ROUTES" }}{{ .HostPort }} {{ else }}none{{ end }}`
	const rts = `{{ range routes "ROUTES" }}{{ .Name }} {{ else }}none{{ end }}`
	runCases(t, []renderCase{
		{name: "upstreams below min", edit: withRoutes(1), tmpl: ups, is: ErrTooFewUpstreams, msg: []string{"ROUTES has 0", "at least 1"}},
		{name: "routes below min", edit: withRoutes(1), tmpl: rts, is: ErrTooFewUpstreams, msg: []string{"ROUTES has 0"}},
		{name: "upstreams min 0 allows none", edit: withRoutes(0), tmpl: ups, want: "none"},
		{name: "routes min 0 allows none", edit: withRoutes(0), tmpl: rts, want: "none"},
		{name: "upstreams at min", edit: withRoutes(1, good), tmpl: ups, want: "10.0.0.1:80 "},
		// Two providers, but only one can be rendered.
		{name: "upstreams skipped count", edit: withRoutes(2, good, evil), tmpl: ups, is: ErrTooFewUpstreams, msg: []string{"ROUTES has 1", "at least 2"}},
		{name: "routes skipped count", edit: withRoutes(2, good, evil), tmpl: rts, is: ErrTooFewUpstreams, msg: []string{"ROUTES has 1"}},
		{name: "upstreams of an unresolved requirement", tmpl: `{{ upstreams "QUEUE_URL" }}`, is: ErrUnresolved},
		{name: "routes of an unknown requirement", tmpl: `{{ routes "NOPE" }}`, is: ErrUnknownVar},
	})
}

func TestOption(t *testing.T) {
	set := func(d *Data) { d.Options = map[string]string{"listen": "127.0.0.1:8443", "empty": ""} }
	runCases(t, []renderCase{
		{name: "default", tmpl: `{{ option "listen" "80" }}`, want: "80"},
		{name: "set", edit: set, tmpl: `{{ option "listen" "80" }}`, want: "127.0.0.1:8443"},
		{name: "set without default", edit: set, tmpl: `{{ option "listen" }}`, want: "127.0.0.1:8443"},
		{name: "set empty beats default", edit: set, tmpl: `[{{ option "empty" "x" }}]`, want: "[]"},
		{name: "missing without default", edit: set, tmpl: `{{ option "domain" }}`, msg: []string{"template test.conf: ", `option "domain" is not set`}},
	})
}

func TestEnv(t *testing.T) {
	// The data must shadow the process environment, not the other way round.
	t.Setenv("PORT", "9999")
	t.Setenv("DATABASE_URL", "from-process")
	t.Setenv("PATCHBAY_CONSUL_TOKEN", "listener-token")
	node := func(d *Data) { d.NodeEnv = []string{"PATH=/usr/bin", "HTTP_PROXY=http://proxy", "PORT=7000"} }
	runCases(t, []renderCase{
		{name: "environment", tmpl: `{{ env "PORT" }}`, want: "8080"},
		{name: "requirement wins over environment", tmpl: `{{ env "DATABASE_URL" }}`, want: "postgres://db:5432/app"},
		// The process environment holds the listener's credentials.
		{name: "never the process's", tmpl: `[{{ env "PATCHBAY_CONSUL_TOKEN" }}]`, want: "[]"},
		{name: "envOrDefault never the process's", tmpl: `{{ envOrDefault "PATCHBAY_CONSUL_TOKEN" "unset" }}`, want: "unset"},
		{name: "mustEnv never the process's", tmpl: `{{ mustEnv "PATCHBAY_CONSUL_TOKEN" }}`, is: ErrTemplate, msg: []string{"mustEnv: PATCHBAY_CONSUL_TOKEN is empty or not set"}},
		{name: "the node's", edit: node, tmpl: `{{ env "HTTP_PROXY" }} {{ mustEnv "PATH" }}`, want: "http://proxy /usr/bin"},
		{name: "the node's wins", edit: node, tmpl: `{{ env "PORT" }}`, want: "7000"},
	})
}

func TestDeniedFunctions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "written")
	runCases(t, []renderCase{
		{name: "plugin", tmpl: `{{ plugin "/bin/echo" "hi" }}`, is: ErrTemplate, msg: []string{"bad template test.conf:1:", "plugin", "disabled"}},
		{name: "writeToFile", tmpl: fmt.Sprintf(`{{ writeToFile %q "" "" "0644" "pwned" }}`, file), is: ErrTemplate, msg: []string{"writeToFile", "disabled"}},
	})
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("writeToFile wrote %s (stat: %v)", file, err)
	}
}

func TestTemplateErrors(t *testing.T) {
	runCases(t, []renderCase{
		{name: "syntax", tmpl: "\n{{ binding \"DATABASE_URL\" ", is: ErrTemplate, msg: []string{"bad template test.conf:2: unclosed action"}},
		{name: "unknown function", tmpl: `{{ nosuch }}`, is: ErrTemplate, msg: []string{"bad template test.conf:1: ", `"nosuch" not defined`}},
		{name: "execution", tmpl: `{{ index "abc" 7 }}`, is: ErrTemplate, msg: []string{"bad template test.conf:1:", "index out of range"}},
		{
			name: "NUL keeps its sentinel", edit: func(d *Data) { d.Binding.Vars["DATABASE_URL"] = binding.Var{Value: "a\x00b", Resolved: true} },
			tmpl: `{{ binding "DATABASE_URL" | systemdQuote }}`, is: ErrUnquotable,
		},
	})
	// The name and line must lead, so a person reading a log knows where
	// the file broke.
	_, err := NewRenderer().Render(context.Background(), "broken.conf", `{{ if }}`, testData())
	if want := "templates: bad template broken.conf:1: "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %v does not start with %q", err, want)
	}
}

// fakeKV is a Consul KV held in memory; it counts fetches per dependency.
type fakeKV struct {
	values map[string]string

	mu      sync.Mutex
	fetches map[string]int
}

func newFakeKV(values map[string]string) *fakeKV {
	return &fakeKV{values: values, fetches: map[string]int{}}
}

func (f *fakeKV) Fetch(_ context.Context, d dep.Dependency) (any, error) {
	if _, ok := d.(*dep.KVGetQuery); !ok {
		return nil, fmt.Errorf("fakeKV cannot fetch %s", d)
	}
	f.mu.Lock()
	f.fetches[d.String()]++
	f.mu.Unlock()
	// The dependency names its key as kv.get(KEY) or kv.block(KEY).
	_, key, _ := strings.Cut(strings.TrimSuffix(d.String(), ")"), "(")
	v, ok := f.values[key]
	if !ok {
		return nil, fmt.Errorf("key %q not found", key)
	}
	return v, nil
}

func (f *fakeKV) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.fetches {
		n += c
	}
	return n
}

// blockingFetcher is a Consul that never answers.
type blockingFetcher struct{}

func (blockingFetcher) Fetch(ctx context.Context, _ dep.Dependency) (any, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// chain is a template of n nested key lookups, each of which needs the
// previous one's value: key (key (key "k0")).
func chain(n int) string {
	return "{{ " + strings.Repeat("key (", n-1) + `key "k0"` + strings.Repeat(")", n-1) + " }}"
}

func TestLookups(t *testing.T) {
	values := map[string]string{"x": "on", "pointer": "target", "target": "value"}
	for i := range 100 {
		values[fmt.Sprintf("k%d", i)] = fmt.Sprintf("k%d", i+1)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		fetcher Fetcher // nil: a renderer without one
		ctx     context.Context
		tmpl    string
		want    string
		fetches int
		is      []error
		msg     string
	}{
		{name: "no fetcher", tmpl: `{{ key "config/app/flag" }}`, is: []error{ErrLookup}, msg: "config/app/flag"},
		{name: "fetched once", fetcher: newFakeKV(values), tmpl: `{{ key "x" }}-{{ key "x" }}-{{ key "x" }}`, want: "on-on-on", fetches: 1},
		{name: "dependent lookups", fetcher: newFakeKV(values), tmpl: `{{ key (key "pointer") }}`, want: "value", fetches: 2},
		{name: "short chain", fetcher: newFakeKV(values), tmpl: chain(3), want: "k3", fetches: 3},
		{name: "runaway chain stops", fetcher: newFakeKV(values), tmpl: chain(50), is: []error{ErrLookup}, msg: "still missing"},
		{name: "missing key", fetcher: newFakeKV(values), tmpl: `{{ key "nope" }}`, is: []error{ErrLookup}, msg: "nope"},
		{name: "timeout", fetcher: blockingFetcher{}, tmpl: `{{ key "x" }}`, is: []error{ErrLookup, context.DeadlineExceeded}},
		{name: "cancelled", fetcher: blockingFetcher{}, ctx: cancelled, tmpl: `{{ key "x" }}`, is: []error{ErrLookup, context.Canceled}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []Option{WithFetchTimeout(50 * time.Millisecond)}
			if tt.fetcher != nil {
				opts = append(opts, WithFetcher(tt.fetcher))
			}
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			got, err := NewRenderer(opts...).Render(ctx, "test.conf", tt.tmpl, testData())
			if tt.is == nil {
				if err != nil {
					t.Fatalf("render failed: %v", err)
				}
				if string(got) != tt.want {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
				if kv, ok := tt.fetcher.(*fakeKV); ok && kv.total() != tt.fetches {
					t.Fatalf("%d fetches, want %d", kv.total(), tt.fetches)
				}
				return
			}
			if err == nil {
				t.Fatalf("render succeeded with %q, want an error", got)
			}
			for _, is := range tt.is {
				if !errors.Is(err, is) {
					t.Fatalf("error %q does not wrap %q", err, is)
				}
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not mention %q", err, tt.msg)
			}
		})
	}
}

// TestRenderDeterministic renders every builtin twice in sequence and
// several times at once: a Renderer is shared between goroutines, and the
// output must not depend on map order or timing.
func TestRenderDeterministic(t *testing.T) {
	r := NewRenderer()
	d := fixture("/tmp/patchbay-golden")
	for _, name := range Builtins() {
		t.Run(name, func(t *testing.T) {
			contents, err := Builtin(name)
			if err != nil {
				t.Fatal(err)
			}
			first, err := r.Render(context.Background(), name, contents, d)
			if err != nil {
				t.Fatal(err)
			}
			outs := make([][]byte, 8)
			errs := make([]error, len(outs))
			var wg sync.WaitGroup
			for i := range outs {
				wg.Go(func() { outs[i], errs[i] = r.Render(context.Background(), name, contents, d) })
			}
			wg.Wait()
			for i, out := range outs {
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				if string(out) != string(first) {
					t.Fatalf("render %d differs:\n%s\nfirst:\n%s", i, out, first)
				}
			}
		})
	}
}

func TestQuote(t *testing.T) {
	const refused = "(refused)" // the value cannot be written in this format
	tests := []struct {
		in                     string
		shell, systemd, dotenv string
	}{
		{"", `''`, `""`, `""`},
		{"plain", `'plain'`, `"plain"`, `"plain"`},
		{"it's", `'it'\''s'`, `"it's"`, `"it's"`},
		{"''", `''\'''\'''`, `"''"`, `"''"`},
		{`say "hi" now`, `'say "hi" now'`, `"say \"hi\" now"`, `"say \"hi\" now"`},
		// dotenv readers misread a trailing quote or backslash: refused.
		{`say "hi"`, `'say "hi"'`, `"say \"hi\""`, refused},
		{"$HOME $(id) ${X}", `'$HOME $(id) ${X}'`, `"\$HOME \$(id) \${X}"`, `"\$HOME \$(id) \${X}"`},
		{"`id`", "'`id`'", "\"\\`id\\`\"", "\"`id`\""},
		{`a\b\`, `'a\b\'`, `"a\\b\\"`, refused},
		// systemd refuses a file with a value that is not UTF-8.
		{"a\xffb", "'a\xffb'", refused, "\"a\xffb\""},
		{`\n`, `'\n'`, `"\\n"`, `"\\n"`},
		{"a\nb", "'a\nb'", "\"a\nb\"", `"a\nb"`},
		{"a\r\nb", "'a\r\nb'", "\"a\r\nb\"", `"a\r\nb"`},
		{"# not a comment\tü ✓", "'# not a comment\tü ✓'", "\"# not a comment\tü ✓\"", "\"# not a comment\tü ✓\""},
	}
	quoters := []struct {
		name  string
		quote func(string) (string, error)
		want  func(int) string
	}{
		{"ShellQuote", ShellQuote, func(i int) string { return tests[i].shell }},
		{"SystemdQuote", SystemdQuote, func(i int) string { return tests[i].systemd }},
		{"DotenvQuote", DotenvQuote, func(i int) string { return tests[i].dotenv }},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			for _, q := range quoters {
				got, err := q.quote(tt.in)
				if q.want(i) == refused {
					if !errors.Is(err, ErrUnquotable) {
						t.Errorf("%s = %q, %v; want ErrUnquotable", q.name, got, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", q.name, err)
				}
				if got != q.want(i) {
					t.Errorf("%s = %s, want %s", q.name, got, q.want(i))
				}
			}
		})
	}
	for _, in := range []string{"\x00", "a\x00b", "ok\n\x00"} {
		t.Run(fmt.Sprintf("%q", in), func(t *testing.T) {
			for _, q := range quoters {
				if got, err := q.quote(in); !errors.Is(err, ErrUnquotable) {
					t.Errorf("%s = %q, %v; want ErrUnquotable", q.name, got, err)
				}
			}
		})
	}
}
