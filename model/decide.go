package model

import (
	"fmt"
	"maps"
	"slices"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

// Service is what a run decides for one hosted service before it renders.
type Service struct {
	// Result and Reason are set when the run ends here for the service
	// (failed, skipped) and no template renders; for a policy render,
	// Result is what the service ends with once its renders apply.
	Result, Reason string
	// Policy marks a policy render: the binding is not ready, and only
	// the templates that route to forbidden providers render, without
	// them; no provision command or test runs.
	Policy bool
	// Evicted is what the policy render evicts (Policy only).
	Evicted Eviction
	// Renders are the templates to render, sorted by name.
	Renders []Render

	in Input
}

// Render is one template to render, with the data that differs by run.
type Render struct {
	Template string
	Spec     manifest.TemplateFile
	// Binding is the binding the template sees (relaxed by a policy render).
	Binding *binding.Binding
	// Region is the node's region.
	Region string
	// Min is the fewest upstreams an upstreams or routes call may return.
	Min int
	// Error, when set, says why the template is not rendered at all.
	Error string
}

// Prepare decides what a run does for one hosted service, up to its
// renders.
func Prepare(n Node, in Input) Service {
	s := Service{in: in}
	switch {
	case in.Problem != "":
		s.Result, s.Reason = ResultFailed, in.Problem
	case in.Manifest == nil:
		s.Result, s.Reason = ResultSkipped, fmt.Sprintf("not published in federation %s; run patchbay publish", n.Federation)
	case in.Binding == nil:
		s.Result, s.Reason = ResultSkipped, "no binding stored yet; is a resolver running?"
	case !in.Binding.Ready():
		s.Evicted = evicting(in, unresolvedAll(in.Binding))
		if len(s.Evicted.Templates) == 0 {
			s.Result, s.Reason = ResultSkipped, skippedReason(in.Binding.Unresolved)
			return s
		}
		s.Policy, s.Result = true, ResultSkipped
		s.Reason = policyReason(in.Binding.Unresolved, s.Evicted.Templates)
		relaxed := relax(in.Binding)
		for _, name := range s.Evicted.Templates {
			r := render(n, in.Manifest, relaxed, name)
			r.Min = 0
			s.Renders = append(s.Renders, r)
		}
	default:
		for _, name := range slices.Sorted(maps.Keys(in.Manifest.Templates)) {
			s.Renders = append(s.Renders, render(n, in.Manifest, in.Binding, name))
		}
	}
	return s
}

func render(n Node, m *manifest.Manifest, b *binding.Binding, name string) Render {
	spec := m.Templates[name]
	r := Render{Template: name, Spec: spec, Binding: b, Region: n.Region, Min: manifest.DefaultTemplateMin}
	if spec.Min != nil {
		r.Min = *spec.Min
	}
	if spec.Destination == "" {
		r.Error = fmt.Sprintf("template %s has no destination; a listener installs only templates with one", name)
	}
	return r
}

// GuardEvicts reports whether a template whose render failed the min
// guard renders again without it (Min 0): its installed file routes to a
// provider policy no longer allows.
func (s Service) GuardEvicts(template string) bool {
	if s.Policy || s.in.Binding == nil {
		return false
	}
	return slices.Contains(evicting(s.in, selectAll(s.in.Binding)).Templates, template)
}

// ProvisionOf is a service's provision command: listener.yaml's, else the
// manifest's; nil when there is none.
func ProvisionOf(h Hosted, m *manifest.Manifest) *manifest.Provision {
	if h.Provision != nil {
		return h.Provision
	}
	if m == nil {
		return nil
	}
	return m.Provision
}

// ProvisionDue says whether the provision command runs once the files
// applied, and why: a policy render never provisions; a change of files
// or of the inputs since the last provision does.
func (s Service) ProvisionDue(changed bool) (bool, string) {
	switch {
	case s.Policy || s.Result != "":
		return false, ""
	case changed:
		return true, "files change"
	case !s.in.Provisioned:
		return true, "its manifest or binding changed since it was last provisioned (a listener's first run provisions every service)"
	}
	return false, ""
}
