package manifest

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Mistakes in tests: name file:line:column of the list entry or argument.
func TestTestsProblems(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want []string
	}{{
		name: "arguments and names",
		doc: `id: svc
tests:
  - name: Gateway
    command: [curl, "http://{HOTS}:{PORT}/", "{INDEX}"]
  - command: []
  - {name: dup, command: ["true"], timeout: soon}
  - {name: dup, command: ["true"], retries: 3}
`,
		want: []string{
			`svc.yaml:3:11: tests[0].name: "Gateway" is not a name; use lower-case letters, digits and "-", like "gateway-health"`,
			`svc.yaml:4:21: tests[0].command[1]: unknown placeholder {HOTS}; known are HOST, PORT, NODE, REGION and the environment keys; did you mean "HOST"?`,
			`svc.yaml:4:46: tests[0].command[2]: {INDEX} is not known to tests (as to health): a node's instance may not have claimed an index`,
			`svc.yaml:5:5: tests[1].command: missing; give the program and its arguments as a list, e.g. ["curl", "-fsS", "http://{HOST}:{PORT}/healthz"]`,
			`svc.yaml:6:45: tests[2].timeout: "soon" is not a duration; write it like "30s" or "10m"`,
			`svc.yaml:7:12: tests[3].name: "dup" is also the name of tests[2]; give each test its own`,
			`svc.yaml:7:36: unknown field "retries" in tests[3]`,
		},
	}, {
		name: "not a list",
		doc:  "id: svc\ntests: {command: [curl]}\n",
		want: []string{`svc.yaml:2:8: tests: expected a list, found a mapping`},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"svc.yaml": tc.doc})
			_, err := Load(dir)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load error = %v, want ErrInvalid", err)
			}
			var got []string
			for _, line := range strings.Split(err.Error(), "\n") {
				got = append(got, strings.TrimPrefix(line, dir+string(filepath.Separator)))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// Names and timeouts are filled in, and arguments expand like health's.
func TestTestsDefaultsAndExpansion(t *testing.T) {
	m, err := Parse("svc.yaml", []byte(`id: svc
environment: {PATH_PREFIX: /api, PORT: "80"}
tests:
  - command: [curl, -fsS, "http://{HOST}:{PORT}{PATH_PREFIX}/healthz"]
  - {name: smoke, command: [./smoke, "{NODE}", "{REGION}"], timeout: 2m}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Test{
		{Name: "test-1", Command: []string{"curl", "-fsS", "http://{HOST}:{PORT}{PATH_PREFIX}/healthz"}, Timeout: DefaultTestTimeout},
		{Name: "smoke", Command: []string{"./smoke", "{NODE}", "{REGION}"}, Timeout: Duration(2 * time.Minute)},
	}
	if !reflect.DeepEqual(m.Tests, want) {
		t.Fatalf("tests = %+v, want %+v", m.Tests, want)
	}
	for _, tc := range []struct {
		port int
		want string
	}{{8080, "http://10.0.0.1:8080/api/healthz"}, {0, "http://10.0.0.1:80/api/healthz"}} {
		argv, err := m.Tests[0].Argv(TestVars(m, "10.0.0.1", tc.port, "n1", "eu"))
		if err != nil {
			t.Fatal(err)
		}
		if argv[2] != tc.want {
			t.Errorf("port %d: argv[2] = %q, want %q", tc.port, argv[2], tc.want)
		}
	}
	argv, err := m.Tests[1].Argv(TestVars(m, "10.0.0.1", 1, "n1", "eu"))
	if err != nil || !reflect.DeepEqual(argv, []string{"./smoke", "n1", "eu"}) {
		t.Errorf("argv = %q, %v", argv, err)
	}
	m.Environment = nil
	if _, err := m.Tests[0].Argv(TestVars(m, "h", 0, "n", "")); !errors.Is(err, ErrUnknownPlaceholder) {
		t.Errorf("no port and no PORT key: err = %v, want ErrUnknownPlaceholder", err)
	}
}
