package manifest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFiles creates files (name → content) under a new directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadExamples(t *testing.T) {
	set, err := Load("../examples/services")
	if err != nil {
		t.Fatalf("examples do not validate:\n%v", err)
	}
	byID := map[string]Manifest{}
	for _, s := range set.Services {
		byID[s.Manifest.ID] = s.Manifest
	}
	for _, id := range []string{"app-www", "api", "lb-public", "lb-internal"} {
		if _, ok := byID[id]; !ok {
			t.Errorf("service %s missing from examples", id)
		}
	}
	www := byID["app-www"]
	if !www.Public || www.Requires["DATABASE_URL"].Key != "PRIMARY_DATABASE_URL" || www.Requires["API_URL"].Key != "READONLY_API_URL" {
		t.Errorf("app-www = %+v", www)
	}
	if got := www.Environment; got["ENV"] != "production" || got["PORT"] != "8080" || got["WORKERS"] != "4" {
		t.Errorf("app-www environment did not merge 00-defaults and 10-app: %v", got)
	}
	if byID["api"].Public || byID["api"].Provides["API_URL"] == "" || byID["api"].Provides["READONLY_API_URL"] == "" {
		t.Errorf("api = %+v", byID["api"])
	}
	if r := byID["lb-public"].Requires["ROUTES"]; r.Select != SelectAll || !r.Public || !IsGlob(r.Key) {
		t.Errorf("lb-public ROUTES = %+v", r)
	}
	if r := byID["lb-internal"].Requires["ROUTES"]; r.Select != SelectAll || r.Public || !IsGlob(r.Key) {
		t.Errorf("lb-internal ROUTES = %+v", r)
	}
	if len(set.Datastores) != 1 || set.Datastores[0].Datastores.Values["PRIMARY_DATABASE_URL"] == "" || set.Datastores[0].Datastores.Values["API_ELASTICSEARCH_CLUSTER_URL"] == "" {
		t.Errorf("datastores = %+v", set.Datastores)
	}
}

// Every problem names file:line:column; all problems of all files come back.
func TestProblems(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // each problem, as printed, with the temp dir left out
	}{{
		name: "three mistakes in one file",
		files: map[string]string{"svc.yaml": `id: App_WWW
requiers: {}
provides:
  WWW_URL: "http://{HOTS}:{PORT}/"
`},
		want: []string{
			`svc.yaml:1:5: id: "App_WWW" is not a DNS label; use lower-case letters, digits and "-", at most 63, like "app-www"`,
			`svc.yaml:2:1: unknown field "requiers"; did you mean "requires"?`,
			`svc.yaml:4:12: provides.WWW_URL: unknown placeholder {HOTS}; known are HOST, PORT, NODE, REGION, INDEX and the environment keys; did you mean "HOST"?`,
		},
	}, {
		name:  "index without indexed",
		files: map[string]string{"svc.yaml": "id: svc\nprovides: {A_URL: \"http://{HOST}/{INDEX}\"}\n"},
		want:  []string{`svc.yaml:2:19: provides.A_URL: {INDEX} numbers the instances of indexed services only; add indexed: true`},
	}, {
		name:  "missing id",
		files: map[string]string{"svc.yaml": "public: true\n"},
		want:  []string{`svc.yaml:1:1: id: missing; give a DNS label such as "app-www"`},
	}, {
		name: "types and enums",
		files: map[string]string{"svc.yaml": `id: svc
public: "yes"
local_port: http
requires:
  A: {key: X, select: some, region: near}
  B: {key: "*_URL"}
  C: "PRIMARY_DATABASE_URL"
rollout: {group: www, health_timeout: 60}
`},
		want: []string{
			`svc.yaml:2:9: public: "yes" is not true or false`,
			`svc.yaml:3:13: local_port: "http" is not a whole number`,
			`svc.yaml:5:23: requires.A.select: "some" is not one of one, all; did you mean "one"?`,
			`svc.yaml:5:37: requires.A.region: "near" is not one of prefer-local, local-only, any`,
			`svc.yaml:6:3: requires.B: key "*_URL" is a glob, which matches many providers; add select: all`,
			`svc.yaml:7:6: requires.C: "PRIMARY_DATABASE_URL" names no provided key; write "{PRIMARY_DATABASE_URL}"`,
			`svc.yaml:8:39: rollout.health_timeout: "60" is not a duration; write it like "30s" or "10m"`,
		},
	}, {
		name: "repeated key and bad names",
		files: map[string]string{"svc.yaml": `id: svc
environment: {env: x}
provides:
  A_URL: "{HOST}"
  A_URL: "{PORT}"
`},
		want: []string{
			`svc.yaml:2:20: environment variable "env" is not an upper-case name; use A-Z, 0-9 and _, not starting with a digit (e.g. "ENV")`,
			`svc.yaml:5:3: provides: "A_URL" repeats the key of line 4; keep one`,
		},
	}, {
		name: "sections",
		files: map[string]string{"svc.yaml": `id: svc
unique: true
indexed: true
provision: {command: []}
health: {http: "{HOST}:{PORT}", tcp: "{HOST}:{PORT}"}
rollout: {concurrency: -1}
`},
		want: []string{
			`svc.yaml:3:10: unique and indexed exclude each other: a unique service has one live instance, an indexed one numbers many`,
			`svc.yaml:4:13: provision.command: missing; give the program and its arguments as a list, e.g. ["chef-solo", "-o", "nginx::default"]`,
			`svc.yaml:5:1: health: give exactly one of http, tcp and ttl`,
			`svc.yaml:6:1: rollout.group: missing; give a DNS label such as "www"`,
			`svc.yaml:6:24: rollout.concurrency: -1 nodes at a time cannot work; use 1 or more`,
		},
	}, {
		name: "templates",
		files: map[string]string{"svc.yaml": `id: svc
templates:
  both: {source: "builtin:env", contents: "x", destination: /etc/x}
  none: {destination: /etc/x}
  relative: {source: tmpl/env.tmpl, destination: etc/x, perms: "rw-r-----"}
  badname: {source: "builtin:Env!", destination: /etc/x, min: -1, check: []}
  Upper: {contents: x, destination: /etc/x}
  escape: {contents: x, destination: /../../../srv/escaped}
`},
		want: []string{
			`svc.yaml:3:18: templates.both: give source or contents, not both`,
			`svc.yaml:4:3: templates.none: missing source; give "builtin:env", an absolute path, or the template as contents`,
			`svc.yaml:5:22: templates.relative.source: "tmpl/env.tmpl" is relative; give an absolute path on the host, "builtin:NAME", or inline contents`,
			`svc.yaml:5:50: templates.relative.destination: "etc/x" is not an absolute path; give where the file is installed, like "/etc/relative/env"`,
			`svc.yaml:5:64: templates.relative.perms: "rw-r-----" is not octal permissions; write them like "0640"`,
			`svc.yaml:6:21: templates.badname.source: "builtin:Env!" is not a builtin name; write it like "builtin:env"`,
			`svc.yaml:6:63: templates.badname.min: -1 upstreams cannot work; use 0 or more`,
			`svc.yaml:6:67: templates.badname.check: give the program and its arguments as a list, e.g. ["nginx", "-s", "reload"]`,
			`svc.yaml:7:3: templates: "Upper" is not a name; use lower-case letters, digits and "-", like "nginx"`,
			`svc.yaml:8:38: templates.escape.destination: "/../../../srv/escaped" is not a clean path; write it without "..", "//" or a trailing "/", like "/srv/escaped"`,
		},
	}, {
		name: "toml positions",
		files: map[string]string{"svc.toml": `id = "svc"
[requires.DB]
key = "X"
selct = "all"
[provides]
A_URL = "http://{HOST}:{PORT"
`},
		want: []string{
			`svc.toml:4:1: unknown field "selct" in requires.DB; did you mean "select"?`,
			`svc.toml:6:1: provides.A_URL: "{" at offset 14 is never closed; write "{{" for a literal brace`,
		},
	}, {
		name:  "json positions",
		files: map[string]string{"svc.json": "{\n  \"id\": \"svc\",\n  \"public\": 1,\n  \"provides\": {\"A_URL\": \"http:\\/\\/{HOST}\", \"b\": \"x\"}\n}\n"},
		want: []string{
			`svc.json:3:13: public: "1" is not true or false`,
			`svc.json:4:49: provided key "b" is not an upper-case name; use A-Z, 0-9 and _, not starting with a digit (e.g. "B")`,
		},
	}, {
		name: "syntax errors",
		files: map[string]string{
			"a.yaml": "id: svc\n  bad: [\n",
			"b.json": "{\"id\": \"svc\",\n \"public\": tru}\n",
			"c.toml": "id = \"svc\"\npublic = \n",
		},
		want: []string{
			`a.yaml:2: invalid YAML: mapping values are not allowed in this context`,
			`b.json:2:15: invalid JSON: invalid character '}' in literal true (expecting 'e')`,
			`c.toml:2:10: invalid TOML: unexpected character U+000A at start of value`,
		},
	}, {
		name: "merged files keep their own positions",
		files: map[string]string{
			"dir/00-defaults.yaml": "federation: Bad_Fed\nenvironment: {PORT: 8080}\n",
			"dir/10-app.yaml":      "id: svc\nprovides: {A_URL: \"{HOST}:{PROT}\"}\n",
		},
		want: []string{
			`dir/00-defaults.yaml:1:13: federation: "Bad_Fed" is not a DNS label; use lower-case letters, digits and "-", at most 63, like "seatgeek"`,
			`dir/10-app.yaml:2:19: provides.A_URL: unknown placeholder {PROT}; known are HOST, PORT, NODE, REGION, INDEX and the environment keys; did you mean "PORT"?`,
		},
	}, {
		name:  "datastores",
		files: map[string]string{"ds.yaml": "datastores: {primary_url: x, B_URL: \"\"}\n"},
		want: []string{
			`ds.yaml:1:27: datastore key "primary_url" is not an upper-case name; use A-Z, 0-9 and _, not starting with a digit (e.g. "PRIMARY_URL")`,
			`ds.yaml:1:37: datastores.B_URL: empty value; give the URL or remove the key`,
		},
	}, {
		name:  "anchors refused",
		files: map[string]string{"svc.yaml": "id: &x svc\nenvironment: {A: *x}\n"},
		want:  []string{`svc.yaml:1:5: YAML anchors and aliases are not supported; put shared fields in a file that merges (00-defaults.yaml)`},
	}, {
		// encoding/json would read the byte as U+FFFD without a word.
		name:  "non-UTF-8 in JSON",
		files: map[string]string{"ds.json": "{\"datastores\": {\n  \"A_URL\": \"pg://\xff\"}}\n"},
		want:  []string{`ds.json:2:18: byte 0xff is not UTF-8; save the file as UTF-8 text (binary data must be encoded, e.g. base64)`},
	}, {
		name:  "non-UTF-8 in YAML",
		files: map[string]string{"svc.yaml": "id: svc\nenvironment: {A: \"\xc3(\"}\n"},
		want:  []string{`svc.yaml:2:19: byte 0xc3 is not UTF-8; save the file as UTF-8 text (binary data must be encoded, e.g. base64)`},
	}, {
		name:  "non-UTF-8 in TOML",
		files: map[string]string{"svc.toml": "id = \"svc\"\n[environment]\nA = \"\x80\"\n"},
		want:  []string{`svc.toml:3:6: byte 0x80 is not UTF-8; save the file as UTF-8 text (binary data must be encoded, e.g. base64)`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			_, err := Load(dir)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load error = %v, want ErrInvalid", err)
			}
			var got []string
			for _, line := range strings.Split(err.Error(), "\n") {
				got = append(got, strings.TrimPrefix(line, dir+string(filepath.Separator)))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// One manifest written in each format normalizes to identical JSON.
func TestFormatsAgree(t *testing.T) {
	docs := map[string]string{
		"svc.yaml": `id: svc
public: true
environment: {PORT: 8080}
requires:
  DB: "{PRIMARY_DATABASE_URL}"
  ROUTES: {key: "*_URL", select: all, min: 2}
provides: {SVC_URL: "http://{HOST}:{PORT}/"}
provision: {command: [make, deploy], timeout: 1m}
`,
		"svc.json": `{"id": "svc", "public": true, "environment": {"PORT": 8080},
 "requires": {"DB": "{PRIMARY_DATABASE_URL}", "ROUTES": {"key": "*_URL", "select": "all", "min": 2}},
 "provides": {"SVC_URL": "http:\/\/{HOST}:{PORT}/"},
 "provision": {"command": ["make", "deploy"], "timeout": "1m"}}`,
		"svc.toml": `id = "svc"
public = true
environment.PORT = 8080
provides = {SVC_URL = "http://{HOST}:{PORT}/"}
[requires]
DB = "{PRIMARY_DATABASE_URL}"
ROUTES = {key = "*_URL", select = "all", min = 2}
[provision]
command = ["make", "deploy"]
timeout = "1m"
`,
	}
	var first []byte
	for _, name := range []string{"svc.yaml", "svc.json", "svc.toml"} {
		m, err := Parse(name, []byte(docs[name]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, _ := json.Marshal(m)
		if first == nil {
			first = got
			continue
		}
		if string(got) != string(first) {
			t.Errorf("%s normalizes to\n%s\nyaml to\n%s", name, got, first)
		}
	}
}

func TestMergeLaterKeysWin(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"svc/00-defaults.yaml": "public: true\nenvironment: {ENV: staging, REGION_NAME: eu}\nrequires: {DB: {key: A_URL, optional: true}}\n",
		"svc/10-app.json":      `{"id": "svc", "environment": {"ENV": "production"}, "requires": {"DB": {"key": "B_URL"}}}`,
		"svc/20-last.toml":     "public = false\n",
		"svc/_ignored.yaml":    "id: ignored\n",
		"svc/notes.txt":        "not a manifest",
	})
	set, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Services) != 1 {
		t.Fatalf("services = %+v", set.Services)
	}
	s := set.Services[0]
	m := s.Manifest
	if m.ID != "svc" || m.Public || m.Environment["ENV"] != "production" || m.Environment["REGION_NAME"] != "eu" {
		t.Errorf("merged = %+v", m)
	}
	if r := m.Requires["DB"]; r.Key != "B_URL" || !r.Optional {
		t.Errorf("requirement did not merge deeply: %+v", r)
	}
	if len(s.Files) != 3 || !strings.HasSuffix(s.Files[0], "00-defaults.yaml") || !strings.HasSuffix(s.Files[2], "20-last.toml") {
		t.Errorf("files = %v", s.Files)
	}
}

// Two services side by side in one directory are a mistake to report
// with both files, not one merged service named after the last file.
func TestLoadDifferentIDsInOneDirectory(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"svc/api.json":     `{"id": "api", "environment": {"A": "1"}}`,
		"svc/app-www.yaml": "# the web app\nid: app-www\n",
		"svc/zz-more.yaml": "environment: {B: \"2\"}\n",
		"other/a.yaml":     "id: other\n",
		"other/b.yaml":     "id: other\npublic: true\n",
	})
	set, err := Load(dir)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Load = %v, want ErrInvalid", err)
	}
	api, www := filepath.Join(dir, "svc", "api.json"), filepath.Join(dir, "svc", "app-www.yaml")
	want := www + `:2:5: id "app-www" differs from id "api" in ` + api + " (line 1)"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error:\n%v\nwant it to contain\n%s", err, want)
	}
	if len(set.Services) != 1 || set.Services[0].Manifest.ID != "other" {
		t.Errorf("services = %+v, want only other (same id in both files)", set.Services)
	}
}

func TestNormalizedDefaults(t *testing.T) {
	m, err := Parse("svc.yaml", []byte(`id: svc
requires:
  DB: "{PRIMARY_DATABASE_URL}"
  DSN: "postgres://{DB_HOST}:{DB_PORT}/app"
  ROUTES: {key: "*_URL", select: all}
rollout: {group: www}
provision: {command: [true]}
health: {ttl: 30s}
templates: {env: {source: "builtin:env", destination: /etc/svc/env}}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Manifest{
		ID: "svc", Federation: DefaultFederation,
		Requires: map[string]Requirement{
			"DB":     {Key: "PRIMARY_DATABASE_URL", Select: SelectOne, Region: RegionPreferLocal},
			"DSN":    {Template: "postgres://{DB_HOST}:{DB_PORT}/app", Select: SelectOne, Region: RegionPreferLocal},
			"ROUTES": {Key: "*_URL", Select: SelectAll, Region: RegionPreferLocal, Min: new(int(DefaultSelectAllMin))},
		},
		Rollout:   &Rollout{Group: "www", Concurrency: DefaultConcurrency, HealthTimeout: DefaultHealthTimeout},
		Provision: &Provision{Command: []string{"true"}, Timeout: DefaultProvisionLimit},
		Health:    &Health{TTL: Duration(30e9)},
		Templates: map[string]TemplateFile{"env": {
			Source: "builtin:env", Destination: "/etc/svc/env", Perms: DefaultTemplatePerms,
			Min: new(int(DefaultTemplateMin)), Timeout: DefaultCommandTimeout,
		}},
	}
	if !reflect.DeepEqual(*m, want) {
		t.Errorf("normalized =\n%+v\nwant\n%+v", *m, want)
	}
	if keys := m.Requires["DSN"].Keys(); !reflect.DeepEqual(keys, []string{"DB_HOST", "DB_PORT"}) {
		t.Errorf("DSN keys = %v", keys)
	}
}

// The normalized JSON is a manifest too, and normalizing it changes nothing:
// what publish stores reads back the same.
func TestNormalizedJSONIsStable(t *testing.T) {
	set, err := Load("../examples/services")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range set.Services {
		t.Run(s.Manifest.ID, func(t *testing.T) {
			assertStable(t, &s.Manifest)
		})
	}
}

func assertStable(t *testing.T, m *Manifest) {
	t.Helper()
	first, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("normalized.json", first)
	if err != nil {
		t.Fatalf("normalized JSON does not parse: %v\n%s", err, first)
	}
	second, _ := json.Marshal(again)
	if string(first) != string(second) {
		t.Fatalf("normalizing twice differs:\n%s\n%s", first, second)
	}
}

func TestLoadPaths(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(empty, "nope.yaml"), "nope.yaml: cannot read: no such file or directory"},
		{"empty dir", empty, "no manifest files (.yaml, .yml, .json, .toml) in this directory"},
		{"wrong extension", writeFiles(t, map[string]string{"x.ini": "id=x"}) + "/x.ini", "unknown file type; name it .yaml, .yml, .json or .toml"},
		{"empty file", writeFiles(t, map[string]string{"x.yaml": "# nothing\n"}) + "/x.yaml", "file is empty; a manifest needs at least an id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load(%s) = %v, want %q", tt.path, err, tt.want)
			}
		})
	}
}
