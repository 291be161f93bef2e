package manifest

import (
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// TemplateParser parses one template of a manifest without executing it;
// templates.ParseFile is the one a listener's renderer agrees with. The
// error's text is the problem's message ("template nginx, line 3: ...").
type TemplateParser func(name string, t TemplateFile) error

// CheckTemplates parses every template of set's services with parse and
// returns a problem for each that fails, at the manifest line of its
// contents (or source), so that a template every host would refuse is
// caught where the manifest is written. As with Load, set keeps only what
// is valid: a service with a bad template is removed from it. The manifest
// package cannot parse templates itself: the engine and its functions live
// in templates.
func CheckTemplates(set *Set, parse TemplateParser) Problems {
	var probs Problems
	set.Services = slices.DeleteFunc(set.Services, func(s Service) bool {
		n := len(probs)
		probs = append(probs, templateProblems(s, parse)...)
		return len(probs) > n
	})
	return probs.sorted()
}

func templateProblems(s Service, parse TemplateParser) Problems {
	var probs Problems
	for _, name := range slices.Sorted(maps.Keys(s.Manifest.Templates)) {
		t := s.Manifest.Templates[name]
		err := parse(name, t)
		if err == nil {
			continue
		}
		field := "source"
		if t.Contents != "" {
			field = "contents"
		}
		p := s.fieldAt("templates", name, field)
		p.Message = err.Error() + "; every host would refuse to render it"
		probs = append(probs, p)
	}
	return probs
}

// fieldAt is where a field of s (templates.NAME.contents) was written.
func (s Service) fieldAt(path ...string) Problem {
	if s.loc == nil {
		return Problem{File: strings.Join(s.Files, ", ")}
	}
	return s.loc.at(path...)
}

// locate is the locator of a group's merged fragments, kept with the
// Service for problems found after Load (CheckTemplates).
func locate(fragments []fragment) *locator {
	origin := map[*yaml.Node]string{}
	for _, fr := range fragments {
		markOrigin(fr.root, fr.file, origin)
	}
	merged := fragments[0].root
	for _, fr := range fragments[1:] {
		merged = mergeNodes(merged, fr.root)
	}
	return &locator{root: merged, origin: origin, fallback: fragments[len(fragments)-1].file}
}
