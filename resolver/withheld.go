package resolver

import (
	"cmp"
	"net/url"
	"slices"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

// withheldKey is what a survey depends on; like memoKey it ignores the
// consumer, whose own instances are taken out per binding.
type withheldKey struct {
	fed, key string
	public   bool
}

// survey is every provider withheld for a withheldKey, and the
// Withholding that bindings without instances of their own share.
type survey struct {
	all    []binding.Withheld
	shared *binding.Withholding
}

// withhold adds to v, a select-all var of q, the providers policy keeps
// out, when v has fewer providers than a listener needs to render.
func (e *engine) withhold(q *query, v binding.Var) binding.Var {
	if q.req.Select != manifest.SelectAll || q.invalid != "" || len(v.Providers) >= q.needs {
		return v
	}
	wk := withheldKey{q.fed, q.req.Key, q.req.Public}
	sv, ok := e.withheld[wk]
	if !ok {
		sv.all = e.surveyWithheld(q)
		sv.shared = bounded(sv.all)
		e.withheld[wk] = sv
	}
	// The consumer's own instances are no upstream of it: its file names
	// its own address as the one it listens on.
	own := func(w binding.Withheld) bool {
		return w.Service == q.service && w.Reason != binding.WithheldOtherFederation
	}
	v.Withheld = sv.shared
	if slices.ContainsFunc(sv.all, own) {
		v.Withheld = bounded(slices.DeleteFunc(slices.Clone(sv.all), own))
	}
	return v
}

// bounded is list as a Withholding of at most MaxWithheld providers; nil
// when list is empty.
func bounded(list []binding.Withheld) *binding.Withholding {
	if len(list) == 0 {
		return nil
	}
	w := &binding.Withholding{Providers: list}
	if len(list) > binding.MaxWithheld {
		w.Providers, w.Omitted = list[:binding.MaxWithheld:binding.MaxWithheld], len(list)-binding.MaxWithheld
	}
	return w
}

// surveyWithheld lists every live provider of q's key that policy keeps from
// consumers in q's federation, sorted.
func (e *engine) surveyWithheld(q *query) []binding.Withheld {
	var out []binding.Withheld
	add := func(fi *fedIndex, reason string, skip func(*binding.Instance) bool) {
		if fi == nil {
			return
		}
		for _, g := range fi.groups(q) {
			for _, o := range g.offers {
				if !skip(o.in) {
					out = append(out, withheldOf(o.in, g.key, o.value, reason))
				}
			}
		}
	}
	allowed := func(in *binding.Instance) bool { return !q.req.Public || in.Public }
	none := func(*binding.Instance) bool { return false }
	add(e.feds[q.fed], binding.WithheldNotPublic, allowed)
	add(e.unpublished[q.fed], binding.WithheldUnpublished, none)
	for fed, fi := range e.feds {
		if fed != q.fed {
			add(fi, binding.WithheldOtherFederation, none)
		}
	}
	for fed, fi := range e.unpublished {
		if fed != q.fed {
			add(fi, binding.WithheldOtherFederation, none)
		}
	}
	// Maps were walked above; sorting on every field gives one order, and
	// an instance listed under two federations alike once.
	slices.SortFunc(out, compareWithheld)
	return slices.Compact(out)
}

func withheldOf(in *binding.Instance, key, value, reason string) binding.Withheld {
	return binding.Withheld{
		Instance: in.ID, Service: in.Service, Key: key, Value: locator(value),
		Address: in.Address, Port: in.Port, Reason: reason,
	}
}

// locator keeps of a URL value what places it in a load-balancer config.
func locator(value string) string {
	u, err := url.Parse(value)
	if err != nil || u.Host == "" {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
}

func compareWithheld(a, b binding.Withheld) int {
	return cmp.Or(
		cmp.Compare(a.Instance, b.Instance),
		cmp.Compare(a.Key, b.Key),
		cmp.Compare(a.Reason, b.Reason),
		cmp.Compare(a.Service, b.Service),
		cmp.Compare(a.Value, b.Value),
		cmp.Compare(a.Address, b.Address),
		cmp.Compare(a.Port, b.Port),
	)
}

// templatesNeed is the most upstreams any of m's templates requires, the
// count below which a listener keeps a last good file.
func templatesNeed(m *manifest.Manifest) int {
	need := 0
	for _, t := range m.Templates {
		need = max(need, ptrOr(t.Min, manifest.DefaultTemplateMin))
	}
	return need
}

func ptrOr(p *int, fallback int) int {
	if p == nil {
		return fallback
	}
	return *p
}
