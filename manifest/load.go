package manifest

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Service is one service's normalized manifest and the files it merged.
type Service struct {
	Manifest Manifest `json:"manifest"`
	Files    []string `json:"files"`
	// loc finds where a field was written, for CheckTemplates; nil for a
	// manifest not read from files by Load.
	loc *locator
}

// DatastoreFile is one validated datastores document.
type DatastoreFile struct {
	Datastores Datastores `json:"datastores"`
	File       string     `json:"file"`
}

// Set is everything Load found.
type Set struct {
	Services   []Service       `json:"services"`
	Datastores []DatastoreFile `json:"datastore_files"`
}

// Load reads manifests from files and directories.
//
// A file stands alone. A directory is walked; the manifest files directly in
// each directory (.yaml, .yml, .json, .toml; names starting with "." or "_"
// are skipped) are the fragments of one service, merged in lexical order
// with later keys winning; fragments that name different ids are an error. A document with a top-level "datastores" key is a
// datastores file and merges with nothing.
//
// When any input is wrong the error is Problems, listing every problem of
// every file; it matches ErrInvalid. The Set then holds what was valid.
func Load(paths ...string) (*Set, error) {
	var (
		set   Set
		probs Problems
	)
	for _, p := range paths {
		groups, prob := fileGroups(p)
		if prob != nil {
			probs = append(probs, *prob)
			continue
		}
		for _, files := range groups {
			probs = append(probs, loadGroup(&set, files)...)
		}
	}
	if len(probs) > 0 {
		return &set, probs.sorted()
	}
	return &set, nil
}

// Parse reads one manifest document held in memory; file names it in
// errors and chooses the format by its extension.
func Parse(file string, data []byte) (*Manifest, error) {
	return parseOne(file, Extensions[strings.ToLower(filepath.Ext(file))], data)
}

// ParseStored reads a manifest as the registry stores it, its normalized
// JSON, with every rule publish applies; key names it in errors. The
// listener and the resolver read every stored manifest through it: a
// value written into Consul by hand is untrusted input like a file.
func ParseStored(key string, data []byte) (*Manifest, error) {
	return parseOne(key, "json", data)
}

func parseOne(file, format string, data []byte) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, Problems{*tooLarge(file, "file", int64(len(data)))}
	}
	root, prob := parseDocumentAs(file, format, data)
	if prob != nil {
		return nil, Problems{*prob}
	}
	m, probs := buildService([]fragment{{file: file, root: root}})
	if len(probs) > 0 {
		return nil, probs.sorted()
	}
	if prob := checkStoredSize(m, []string{file}); prob != nil {
		return nil, Problems{*prob}
	}
	return m, nil
}

// fileGroups lists the files of path, one group per directory.
func fileGroups(path string) ([][]string, *Problem) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, &Problem{File: path, Message: "cannot read: " + unwrapPathError(err)}
	}
	if !info.IsDir() {
		return [][]string{{path}}, nil
	}
	byDir := map[string][]string{}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		hidden := p != path && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_"))
		switch {
		case d.IsDir() && hidden:
			return filepath.SkipDir
		case d.IsDir(), hidden:
			return nil
		}
		if _, ok := Extensions[strings.ToLower(filepath.Ext(p))]; ok {
			byDir[filepath.Dir(p)] = append(byDir[filepath.Dir(p)], p)
		}
		return nil
	})
	if err != nil {
		return nil, &Problem{File: path, Message: "cannot read: " + unwrapPathError(err)}
	}
	if len(byDir) == 0 {
		return nil, &Problem{File: path, Message: "no manifest files (.yaml, .yml, .json, .toml) in this directory"}
	}
	var groups [][]string
	for _, dir := range slices.Sorted(maps.Keys(byDir)) {
		files := byDir[dir]
		slices.Sort(files) // WalkDir is lexical already; sorting states the contract
		groups = append(groups, files)
	}
	return groups, nil
}

func unwrapPathError(err error) string {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

type fragment struct {
	file string
	root *yaml.Node
}

// loadGroup parses the files of one group, adds what is valid to set and
// returns the problems.
func loadGroup(set *Set, files []string) Problems {
	var (
		probs     Problems
		fragments []fragment
	)
	for _, f := range files {
		data, prob := readFile(f)
		if prob != nil {
			probs = append(probs, *prob)
			continue
		}
		root, prob := parseDocument(f, data)
		if prob != nil {
			probs = append(probs, *prob)
			continue
		}
		if lookup(root, "datastores") == nil {
			fragments = append(fragments, fragment{file: f, root: root})
			continue
		}
		ds, dsProbs := buildDatastores(f, root)
		probs = append(probs, dsProbs...)
		if len(dsProbs) == 0 {
			set.Datastores = append(set.Datastores, DatastoreFile{Datastores: *ds, File: f})
		}
	}
	if len(fragments) == 0 {
		return probs
	}
	if prob := differentIDs(fragments); prob != nil {
		return append(probs, *prob)
	}
	m, mProbs := buildService(fragments)
	if len(mProbs) > 0 {
		return append(probs, mProbs...)
	}
	s := Service{Manifest: *m, loc: locate(fragments)}
	for _, fr := range fragments {
		s.Files = append(s.Files, fr.file)
	}
	if prob := checkStoredSize(m, s.Files); prob != nil {
		return append(probs, *prob)
	}
	set.Services = append(set.Services, s)
	return probs
}

// differentIDs reports the first fragment whose id differs from an earlier
// one: merged, two services of one directory would become one, named after
// the last file, and every reference to the other would break.
func differentIDs(fragments []fragment) *Problem {
	var first *yaml.Node
	var firstFile string
	for _, fr := range fragments {
		id := lookup(fr.root, "id")
		if id == nil || id.Kind != yaml.ScalarNode {
			continue
		}
		if first == nil {
			first, firstFile = id, fr.file
			continue
		}
		if id.Value != first.Value {
			return &Problem{File: fr.file, Line: id.Line, Column: id.Column, Message: fmt.Sprintf(
				"id %q differs from id %q in %s (line %d): the files of one directory are fragments of one service; put each service in a directory of its own",
				id.Value, first.Value, firstFile, first.Line)}
		}
	}
	return nil
}

// buildService checks each fragment against the schema, merges them and
// validates the result.
func buildService(fragments []fragment) (*Manifest, Problems) {
	var probs Problems
	origin := map[*yaml.Node]string{}
	pruned := map[string]bool{}
	for _, fr := range fragments {
		ps, pr := checkManifestSchema(fr.file, fr.root, reflect.TypeFor[Manifest]())
		probs = append(probs, ps...)
		maps.Copy(pruned, pr)
		markOrigin(fr.root, fr.file, origin)
	}
	merged := fragments[0].root
	for _, fr := range fragments[1:] {
		merged = mergeNodes(merged, fr.root)
	}
	var m Manifest
	if err := merged.Decode(&m); err != nil {
		// The schema check admits only decodable input; reaching this is a bug
		// worth reporting as such rather than hiding.
		return nil, Problems{{File: fragments[0].file, Message: "internal error decoding a checked manifest: " + err.Error()}}
	}
	v := validator{loc: locator{root: merged, origin: origin, fallback: fragments[len(fragments)-1].file}, pruned: pruned}
	v.manifest(&m)
	return &m, append(probs, v.probs...)
}

func buildDatastores(file string, root *yaml.Node) (*Datastores, Problems) {
	probs, pruned := checkManifestSchema(file, root, reflect.TypeFor[Datastores]())
	var ds Datastores
	if err := root.Decode(&ds); err != nil {
		return nil, Problems{{File: file, Message: "internal error decoding checked datastores: " + err.Error()}}
	}
	origin := map[*yaml.Node]string{}
	markOrigin(root, file, origin)
	v := validator{loc: locator{root: root, origin: origin, fallback: file}, pruned: pruned}
	v.datastores(&ds)
	return &ds, append(probs, v.probs...)
}

func markOrigin(n *yaml.Node, file string, origin map[*yaml.Node]string) {
	origin[n] = file
	for _, c := range n.Content {
		markOrigin(c, file, origin)
	}
}

// mergeNodes merges src over dst: mappings merge key by key, recursively;
// anything else in src replaces what dst had.
func mergeNodes(dst, src *yaml.Node) *yaml.Node {
	if dst.Kind != yaml.MappingNode || src.Kind != yaml.MappingNode {
		return src
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: dst.Tag, Line: dst.Line, Column: dst.Column}
	out.Content = slices.Clone(dst.Content)
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		j := keyIndex(out, k.Value)
		if j < 0 {
			out.Content = append(out.Content, k, v)
			continue
		}
		out.Content[j] = k
		out.Content[j+1] = mergeNodes(out.Content[j+1], v)
	}
	return out
}

func keyIndex(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return i
		}
	}
	return -1
}

// lookup returns the value node of key in mapping n, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	if i := keyIndex(n, key); i >= 0 {
		return n.Content[i+1]
	}
	return nil
}

// locator finds where a field of a merged manifest was written.
type locator struct {
	root     *yaml.Node
	origin   map[*yaml.Node]string
	fallback string
}

// at returns the problem position of path: the value for a single value,
// the key for a mapping or list, the deepest existing ancestor otherwise.
func (l locator) at(path ...string) Problem {
	n, key := l.root, l.root
	for _, k := range path {
		if i, err := strconv.Atoi(k); err == nil && n.Kind == yaml.SequenceNode && i >= 0 && i < len(n.Content) {
			key, n = n.Content[i], n.Content[i] // a list entry: tests.0.command
			continue
		}
		i := keyIndex(n, k)
		if n.Kind != yaml.MappingNode || i < 0 {
			break
		}
		key, n = n.Content[i], n.Content[i+1]
	}
	if n.Kind != yaml.ScalarNode {
		n = key
	}
	file := l.origin[n]
	if file == "" {
		file = l.fallback
	}
	return Problem{File: file, Line: n.Line, Column: n.Column}
}
