package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
	"go.yaml.in/yaml/v3"
)

// maxDepth bounds nesting in any input format: manifests are shallow, and a
// bound keeps hostile input from exhausting the stack.
const maxDepth = 64

// Extensions lists the file name extensions patchbay reads, by format.
var Extensions = map[string]string{".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}

// parseDocument turns one file into a position-carrying YAML node tree,
// whatever its format, so that one schema check serves all three formats.
// It returns the top-level mapping node.
func parseDocument(file string, data []byte) (*yaml.Node, *Problem) {
	return parseDocumentAs(file, Extensions[strings.ToLower(filepath.Ext(file))], data)
}

// parseDocumentAs is parseDocument in a format given apart from the name:
// a Consul key has no extension.
func parseDocumentAs(file, format string, data []byte) (*yaml.Node, *Problem) {
	if prob := checkUTF8(file, data); prob != nil {
		return nil, prob
	}
	var (
		root *yaml.Node
		prob *Problem
	)
	switch format {
	case "json":
		root, prob = parseJSON(file, data)
	case "toml":
		root, prob = parseTOML(file, data)
	case "yaml":
		root, prob = parseYAML(file, data)
	default:
		return nil, &Problem{File: file, Message: "unknown file type; name it .yaml, .yml, .json or .toml"}
	}
	if prob != nil {
		return nil, prob
	}
	if root == nil || root.Kind == 0 || (root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
		return nil, &Problem{File: file, Message: "file is empty; a manifest needs at least an id"}
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Problem{File: file, Line: root.Line, Column: root.Column, Message: "expected a mapping of fields at the top level, found " + NodeKind(root)}
	}
	return root, nil
}

// checkUTF8 refuses bytes that are not UTF-8 before any parser sees them:
// encoding/json turns them into U+FFFD without a word, and bindings are
// JSON, so a value would reach every host altered.
func checkUTF8(file string, data []byte) *Problem {
	off := InvalidUTF8(string(data))
	if off < 0 {
		return nil
	}
	line, col := newLineIndex(data).position(off)
	return &Problem{File: file, Line: line, Column: col, Message: fmt.Sprintf("byte 0x%02x is not UTF-8; save the file as UTF-8 text (binary data must be encoded, e.g. base64)", data[off])}
}

// InvalidUTF8 returns the offset of the first byte of s that is not part
// of valid UTF-8, or -1 when s is all UTF-8.
func InvalidUTF8(s string) int {
	if utf8.ValidString(s) {
		return -1
	}
	for off := 0; ; {
		r, size := utf8.DecodeRuneInString(s[off:])
		if r == utf8.RuneError && size <= 1 {
			return off
		}
		off += size
	}
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func parseYAML(file string, data []byte) (*yaml.Node, *Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlProblem(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlProblem(file, err)
		}
		return nil, &Problem{File: file, Line: extra.Line, Column: extra.Column, Message: "a second YAML document; put each service in its own file"}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	if p := rejectAliases(file, doc.Content[0], 0); p != nil {
		return nil, p
	}
	return doc.Content[0], nil
}

// rejectAliases refuses anchors and aliases: they make positions ambiguous
// and let a small file expand without bound. Several files that merge do
// the same job.
func rejectAliases(file string, n *yaml.Node, depth int) *Problem {
	if depth > maxDepth {
		return &Problem{File: file, Line: n.Line, Column: n.Column, Message: fmt.Sprintf("nested deeper than %d levels", maxDepth)}
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return &Problem{File: file, Line: n.Line, Column: n.Column, Message: "YAML anchors and aliases are not supported; put shared fields in a file that merges (00-defaults.yaml)"}
	}
	for _, c := range n.Content {
		if p := rejectAliases(file, c, depth+1); p != nil {
			return p
		}
	}
	return nil
}

func yamlProblem(file string, err error) *Problem {
	line, msg := YAMLError(err)
	return &Problem{File: file, Line: line, Message: "invalid YAML: " + msg}
}

// YAMLError splits a syntax error of the YAML decoder into its line (0 when
// it names none) and its message without the "yaml: " prefix, for every
// file patchbay reads (manifests, listener.yaml).
func YAMLError(err error) (line int, msg string) {
	msg = err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		return line, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// lineIndex converts byte offsets into 1-based line and column.
type lineIndex []int // offsets where lines start

func newLineIndex(data []byte) lineIndex {
	idx := lineIndex{0}
	for i, c := range data {
		if c == '\n' {
			idx = append(idx, i+1)
		}
	}
	return idx
}

func (li lineIndex) position(off int) (line, col int) {
	i := sort.Search(len(li), func(i int) bool { return li[i] > off }) - 1
	return i + 1, off - li[i] + 1
}

// jsonReader builds a node tree from encoding/json tokens, keeping the
// position of each value.
type jsonReader struct {
	file  string
	data  []byte
	lines lineIndex
	dec   *json.Decoder
}

func parseJSON(file string, data []byte) (*yaml.Node, *Problem) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	r := &jsonReader{file: file, data: data, lines: newLineIndex(data), dec: json.NewDecoder(bytes.NewReader(data))}
	r.dec.UseNumber()
	n, err := r.value(0)
	if err == nil {
		if _, extra := r.dec.Token(); !errors.Is(extra, io.EOF) {
			err = fmt.Errorf("unexpected data after the top-level value")
		}
	}
	if err != nil {
		return nil, r.problem(err)
	}
	return n, nil
}

func (r *jsonReader) problem(err error) *Problem {
	off := int(r.dec.InputOffset())
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		// A Decoder's offsets count from its buffer, not the file; Unmarshal
		// of the whole file finds the same error at its true offset.
		var v any
		if errors.As(json.Unmarshal(r.data, &v), &syn) {
			off = int(syn.Offset) - 1 // Offset counts the bytes read, the bad one included
		}
	}
	line, col := r.lines.position(min(off, max(len(r.data)-1, 0)))
	return &Problem{File: r.file, Line: line, Column: col, Message: "invalid JSON: " + err.Error()}
}

// start returns the position of the next token: the decoder's offset is the
// end of the previous one, before any separator and white space.
func (r *jsonReader) start() (line, col int) {
	off := int(r.dec.InputOffset())
	for off < len(r.data) && strings.IndexByte(" \t\r\n,:", r.data[off]) >= 0 {
		off++
	}
	return r.lines.position(min(off, max(len(r.data)-1, 0)))
}

func (r *jsonReader) value(depth int) (*yaml.Node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	line, col := r.start()
	tok, err := r.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := &yaml.Node{Line: line, Column: col}
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
		} else {
			n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
		}
		for r.dec.More() {
			if n.Kind == yaml.MappingNode {
				kl, kc := r.start()
				k, err := r.dec.Token()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.(string), Line: kl, Column: kc})
			}
			c, err := r.value(depth + 1)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		if _, err := r.dec.Token(); err != nil { // closing delimiter
			return nil, err
		}
	case string:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!str", v
	case json.Number:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!float", v.String()
		if _, err := v.Int64(); err == nil {
			n.Tag = "!!int"
		}
	case bool:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!bool", strconv.FormatBool(v)
	case nil:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", "null"
	}
	return n, nil
}

// parseTOML decodes with go-toml, which owns TOML's semantics (tables, array
// tables, dotted keys), then finds each key's position with its parser.
func parseTOML(file string, data []byte) (*yaml.Node, *Problem) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			return nil, &Problem{File: file, Line: line, Column: col, Message: "invalid TOML: " + strings.TrimPrefix(de.Error(), "toml: ")}
		}
		return nil, &Problem{File: file, Message: "invalid TOML: " + err.Error()}
	}
	if len(doc) == 0 {
		return nil, nil
	}
	positions := tomlPositions(data)
	var convert func(v any, path []string, depth int) (*yaml.Node, *Problem)
	convert = func(v any, path []string, depth int) (*yaml.Node, *Problem) {
		pos := positions[strings.Join(path, "\x1f")]
		if depth > maxDepth {
			pos = nearestPosition(positions, path)
			return nil, &Problem{File: file, Line: pos[0], Column: pos[1], Message: fmt.Sprintf("nested deeper than %d levels", maxDepth)}
		}
		n := &yaml.Node{Kind: yaml.ScalarNode, Line: pos[0], Column: pos[1]}
		switch v := v.(type) {
		case map[string]any:
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
			for _, k := range slices.Sorted(maps.Keys(v)) {
				kp := append(slices.Clip(path), k)
				c, p := convert(v[k], kp, depth+1)
				if p != nil {
					return nil, p
				}
				kpos := positions[strings.Join(kp, "\x1f")]
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k, Line: kpos[0], Column: kpos[1]}, c)
			}
		case []any:
			n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
			for i, e := range v {
				c, p := convert(e, append(slices.Clip(path), strconv.Itoa(i)), depth+1)
				if p != nil {
					return nil, p
				}
				if c.Line == 0 {
					c.Line, c.Column = n.Line, n.Column
				}
				n.Content = append(n.Content, c)
			}
		case string:
			n.Tag, n.Value = "!!str", v
		case int64:
			n.Tag, n.Value = "!!int", strconv.FormatInt(v, 10)
		case float64:
			n.Tag, n.Value = "!!float", strconv.FormatFloat(v, 'g', -1, 64)
		case bool:
			n.Tag, n.Value = "!!bool", strconv.FormatBool(v)
		case time.Time:
			n.Tag, n.Value = "!!timestamp", v.Format(time.RFC3339Nano)
		default: // local dates and times
			n.Tag, n.Value = "!!timestamp", fmt.Sprint(v)
		}
		return n, nil
	}
	root, p := convert(doc, nil, 0)
	if p != nil {
		return nil, p
	}
	root.Line, root.Column = 1, 1
	return root, nil
}

// nearestPosition is the position of path or of its deepest ancestor that
// has one: the elements of nested inline arrays have none of their own.
func nearestPosition(positions map[string][2]int, path []string) [2]int {
	for i := len(path); i > 0; i-- {
		if pos, ok := positions[strings.Join(path[:i], "\x1f")]; ok {
			return pos
		}
	}
	return [2]int{}
}

// tomlPositions maps each key path (parts joined by \x1f) to the line and
// column where the key first appears.
func tomlPositions(data []byte) map[string][2]int {
	pos := map[string][2]int{}
	var p unstable.Parser
	p.Reset(data)
	record := func(path []string, n *unstable.Node) {
		if n.Raw.Length == 0 {
			return // arrays and inline tables carry no range: their parent's position serves
		}
		for i := range path {
			k := strings.Join(path[:i+1], "\x1f")
			if _, ok := pos[k]; !ok {
				s := p.Shape(n.Raw)
				pos[k] = [2]int{s.Start.Line, s.Start.Column}
			}
		}
	}
	var keyValue func(prefix []string, kv *unstable.Node)
	keyValue = func(prefix []string, kv *unstable.Node) {
		path := append(slices.Clip(prefix), keyParts(kv.Key())...)
		record(path, kv)
		v := kv.Value()
		if v.Kind == unstable.InlineTable {
			for it := v.Children(); it.Next(); {
				if c := it.Node(); c.Kind == unstable.KeyValue {
					keyValue(path, c)
				}
			}
		}
		if v.Kind == unstable.Array {
			i := 0
			for it := v.Children(); it.Next(); {
				if c := it.Node(); c.Kind != unstable.Comment {
					record(append(slices.Clip(path), strconv.Itoa(i)), c)
					i++
				}
			}
		}
	}
	var table []string
	arrays := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			table = keyParts(e.Key())
			record(table, e.Child())
		case unstable.ArrayTable:
			k := keyParts(e.Key())
			j := strings.Join(k, "\x1f")
			table = append(k, strconv.Itoa(arrays[j]))
			arrays[j]++
			record(table, e.Child())
		case unstable.KeyValue:
			keyValue(table, e)
		}
	}
	return pos
}

func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

// NodeKind names what a YAML node holds, for messages like "expected a
// list, found a mapping"; other YAML files of patchbay use it too.
func NodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	default:
		return "an alias"
	}
}
