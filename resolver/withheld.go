package resolver

import (
	"cmp"
	"net/url"
	"slices"

	"github.com/patchbay/patchbay/manifest"
)

// Why a live provider of a select-all key was withheld from a binding.
const (
	WithheldNotPublic       = "not public"
	WithheldOtherFederation = "other federation"
	WithheldUnpublished     = "unpublished"
)

// MaxWithheld bounds a Withholding: at about 150 bytes each, a binding
// stays well inside Consul's 512 KiB value however many providers policy
// keeps out of it.
const MaxWithheld = 1000

// Withholding is what policy keeps out of one select-all var.
type Withholding struct {
	Providers []Withheld `json:"providers"` // sorted by instance, key
	// Omitted counts the withheld providers past MaxWithheld left out.
	Omitted int `json:"omitted,omitempty"`
}

// List is w's providers; none when w is nil.
func (w *Withholding) List() []Withheld {
	if w == nil {
		return nil
	}
	return w.Providers
}

// LeftOut is how many withheld providers w left out for size.
func (w *Withholding) LeftOut() int {
	if w == nil {
		return 0
	}
	return w.Omitted
}

// Withheld is a live provider of a select-all key that policy keeps out of
// a binding. It carries only what locates the provider in a rendered
// file: a URL value keeps its scheme, host and path, never credentials or
// query, and any other value is left out.
type Withheld struct {
	Instance string `json:"instance"`
	Service  string `json:"service"`
	Key      string `json:"key"`
	Value    string `json:"value,omitempty"`
	Address  string `json:"address,omitempty"`
	Port     int    `json:"port,omitempty"`
	Reason   string `json:"reason"` // WithheldNotPublic, WithheldOtherFederation or WithheldUnpublished
}

// Provider is w as a provider, for functions that locate providers.
func (w Withheld) Provider() Provider {
	return Provider{Key: w.Key, Value: w.Value, Service: w.Service, Instance: w.Instance, Address: w.Address, Port: w.Port}
}

// withheldKey is what a survey depends on; like memoKey it ignores the
// consumer, whose own instances are taken out per binding.
type withheldKey struct {
	fed, key string
	public   bool
}

// survey is every provider withheld for a withheldKey, and the
// Withholding that bindings without instances of their own share.
type survey struct {
	all    []Withheld
	shared *Withholding
}

// withhold adds to v, a select-all var of q, the providers policy keeps
// out, when v has fewer providers than a listener needs to render.
func (e *engine) withhold(q *query, v Var) Var {
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
	own := func(w Withheld) bool { return w.Service == q.service && w.Reason != WithheldOtherFederation }
	v.Withheld = sv.shared
	if slices.ContainsFunc(sv.all, own) {
		v.Withheld = bounded(slices.DeleteFunc(slices.Clone(sv.all), own))
	}
	return v
}

// bounded is list as a Withholding of at most MaxWithheld providers; nil
// when list is empty.
func bounded(list []Withheld) *Withholding {
	if len(list) == 0 {
		return nil
	}
	w := &Withholding{Providers: list}
	if len(list) > MaxWithheld {
		w.Providers, w.Omitted = list[:MaxWithheld:MaxWithheld], len(list)-MaxWithheld
	}
	return w
}

// surveyWithheld lists every live provider of q's key that policy keeps from
// consumers in q's federation, sorted.
func (e *engine) surveyWithheld(q *query) []Withheld {
	var out []Withheld
	add := func(fi *fedIndex, reason string, skip func(*Instance) bool) {
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
	allowed := func(in *Instance) bool { return !q.req.Public || in.Public }
	none := func(*Instance) bool { return false }
	add(e.feds[q.fed], WithheldNotPublic, allowed)
	add(e.unpublished[q.fed], WithheldUnpublished, none)
	for fed, fi := range e.feds {
		if fed != q.fed {
			add(fi, WithheldOtherFederation, none)
		}
	}
	for fed, fi := range e.unpublished {
		if fed != q.fed {
			add(fi, WithheldOtherFederation, none)
		}
	}
	// Maps were walked above; sorting on every field gives one order, and
	// an instance listed under two federations alike once.
	slices.SortFunc(out, compareWithheld)
	return slices.Compact(out)
}

func withheldOf(in *Instance, key, value, reason string) Withheld {
	return Withheld{
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

func compareWithheld(a, b Withheld) int {
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
