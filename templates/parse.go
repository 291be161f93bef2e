package templates

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template/parse"

	ctemplate "github.com/hashicorp/consul-template/template"

	"github.com/patchbay/patchbay/manifest"
)

// ParseError is a template that does not parse, at the template's own line
// (not the manifest's: an inline template is one string there).
type ParseError struct {
	Template string
	Line     int
	Msg      string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("template %s, line %d: %s", e.Template, e.Line, e.Msg)
	}
	return fmt.Sprintf("template %s: %s", e.Template, e.Msg)
}

// Is makes errors.Is(err, ErrTemplate) true.
func (e *ParseError) Is(target error) bool { return target == ErrTemplate }

// maxSourceSize bounds a template source read by ParseFile: a template is text,
// and validate must not read a device or a log file to its end.
const maxSourceSize = 1 << 20

// ParseFile parses template name of a manifest as Parse does: its inline
// contents, its builtin, or its source file when that is a regular file
// this process can read (a source usually exists only on the hosts; then
// ParseFile checks nothing and returns nil). Nothing is executed.
func ParseFile(name string, t manifest.TemplateFile) error {
	if t.Contents != "" || strings.HasPrefix(t.Source, manifest.BuiltinPrefix) {
		text, err := Contents(t)
		if err != nil {
			return &ParseError{Template: name, Msg: strings.TrimPrefix(err.Error(), "templates: ")}
		}
		return Parse(name, text)
	}
	text, ok := readSource(t.Source)
	if !ok {
		return nil
	}
	return Parse(name, text)
}

// readSource reads a regular file of at most maxSourceSize; anything else
// (missing, unreadable, a FIFO that would block, too large) is not read.
func readSource(path string) (string, bool) {
	if info, err := os.Stat(path); err != nil || !info.Mode().IsRegular() || info.Size() > maxSourceSize {
		return "", false
	}
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer func() { _ = f.Close() }() // read only
	b, err := io.ReadAll(io.LimitReader(f, maxSourceSize))
	if err != nil {
		return "", false
	}
	return string(b), true
}

// Parse checks that contents parses as Render would parse it, with
// consul-template's engine and function set plus patchbay's, without
// executing anything: no lookup, no file read, no command. An unknown or
// denied function is an error at its line, as it would be on every host.
func Parse(name, contents string) error {
	trees := map[string]*parse.Tree{}
	tr := parse.New(name)
	tr.Mode = parse.SkipFuncCheck // functions are checked below, against the engine's own map
	if _, err := tr.Parse(contents, "", "", trees); err != nil {
		return parseError(name, err.Error())
	}
	checked := map[string]bool{}
	for _, t := range trees {
		for _, id := range identifiers(t.Root) {
			if checked[id.Ident] {
				continue
			}
			checked[id.Ident] = true
			if err := knownFunc(id.Ident); err != nil {
				loc, _ := t.ErrorContext(id)
				return parseError(name, "template: "+loc+": "+err.Error())
			}
		}
	}
	return nil
}

// parseError turns text/template's "template: NAME:LINE: msg" (or
// "NAME:LINE:COL") into a ParseError.
func parseError(name, msg string) error {
	rest, ok := strings.CutPrefix(msg, "template: "+name+":")
	if !ok {
		return &ParseError{Template: name, Msg: msg}
	}
	lineText, rest, _ := strings.Cut(rest, ":")
	line, err := strconv.Atoi(lineText)
	if err != nil {
		return &ParseError{Template: name, Msg: msg}
	}
	if _, after, ok := strings.Cut(rest, ": "); ok && !strings.HasPrefix(rest, " ") {
		rest = after // ErrorContext's column
	}
	return &ParseError{Template: name, Line: line, Msg: strings.TrimSpace(rest)}
}

// knownFunc asks consul-template's own engine whether name is a function
// of a rendered template: a probe that parses a call of it inside
// {{ if false }}, so that nothing runs.
func knownFunc(name string) error {
	if r, ok := probed.Load(name); ok {
		return r.(probeResult).err
	}
	err := probeFunc(name)
	probed.Store(name, probeResult{err})
	return err
}

// probed caches knownFunc by name (a probeResult): a probe builds
// consul-template's whole function map, sprig's included, and one builtin
// calls dozens of functions.
var probed sync.Map

type probeResult struct{ err error }

func probeFunc(name string) error {
	if slices.Contains(denied, name) {
		return fmt.Errorf("function %q is not allowed in patchbay templates (it has side effects)", name)
	}
	f := &funcs{data: &Data{}}
	probe, err := newEngineTemplate("{{ if false }}{{ "+name+" }}{{ end }}", f)
	if err == nil {
		_, err = probe.Execute(&ctemplate.ExecuteInput{Brain: ctemplate.NewBrain()})
	}
	if err != nil {
		return fmt.Errorf("function %q not defined", name)
	}
	return nil
}

// identifiers lists the function names n calls, in order.
func identifiers(n parse.Node) []*parse.IdentifierNode {
	var out []*parse.IdentifierNode
	var walk func(parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					walk(c)
				}
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.ChainNode:
			walk(n.Node)
		case *parse.IdentifierNode:
			out = append(out, n)
		case *parse.IfNode:
			walkBranch(&n.BranchNode, walk)
		case *parse.RangeNode:
			walkBranch(&n.BranchNode, walk)
		case *parse.WithNode:
			walkBranch(&n.BranchNode, walk)
		case *parse.TemplateNode:
			walk(n.Pipe)
		}
	}
	walk(n)
	return out
}

func walkBranch(b *parse.BranchNode, walk func(parse.Node)) {
	walk(b.Pipe)
	walk(b.List)
	if b.ElseList != nil {
		walk(b.ElseList)
	}
}
