package manifest

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestViaProblems: via is checked with file:line like every other field.
func TestViaProblems(t *testing.T) {
	files := map[string]string{"svc.yaml": `id: svc
requires:
  A: {key: A_URL, via: locl}
  B: {template: "{H}:{P}", via: local}
  C: {key: "*_URL", select: all, via: local}
  D: {key: D_URL, via: local}
`}
	want := []string{
		`svc.yaml:3:24: requires.A.via: "locl" is not a way of serving; the only one is "local" (or leave via out); did you mean "local"?`,
		`svc.yaml:4:33: requires.B: via: local serves one provided key through one local port; give key: instead of a template of several keys`,
		`svc.yaml:5:39: requires.C: via: local balances over every live provider itself; use select: one`,
	}
	dir := writeFiles(t, files)
	_, err := Load(dir)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Load error = %v, want ErrInvalid", err)
	}
	var got []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		got = append(got, strings.TrimPrefix(line, dir+string(filepath.Separator)))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestViaLocalNormalized(t *testing.T) {
	dir := writeFiles(t, map[string]string{"svc.yaml": "id: svc\nrequires:\n  A: {key: A_URL, via: local}\n"})
	set, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := set.Services[0].Manifest.Requires["A"]
	if r.Via != ViaLocal || r.Select != SelectOne {
		t.Fatalf("requirement = %+v; want via local, select one", r)
	}
}

// TestLocalPortConflicts: two services of one federation claiming one
// local_port are reported at each, with file:line; other federations and
// the set's own copy of a published manifest are not conflicts.
func TestLocalPortConflicts(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a/svc.yaml": "id: api\nlocal_port: 7001\n",
		"b/svc.yaml": "id: search\nlocal_port: 7001\n",
		"c/svc.yaml": "id: cache\nlocal_port: 7002\n",
		"d/svc.yaml": "id: other\nfederation: pci\nlocal_port: 7002\n",
	})
	set, err := Load(filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c"), filepath.Join(dir, "d"))
	if err != nil {
		t.Fatal(err)
	}
	published := []Manifest{{ID: "api", LocalPort: 7001}, {ID: "queue", LocalPort: 7002}}
	var got []string
	for _, p := range LocalPortConflicts(set, published) {
		got = append(got, strings.TrimPrefix(p.Error(), dir+string(filepath.Separator)))
	}
	want := []string{
		"a/svc.yaml:2:13: local_port: 7001 is also claimed by search; a node serving both locally could bind only one: give each service its own local_port",
		"b/svc.yaml:2:13: local_port: 7001 is also claimed by api; a node serving both locally could bind only one: give each service its own local_port",
		"c/svc.yaml:2:13: local_port: 7002 is also claimed by queue; a node serving both locally could bind only one: give each service its own local_port",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("conflicts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
