package resolver

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/manifest"
)

// Resolve binds every requirement of every manifest in snap, for region ""
// and for each region the service's own instances run in. Only live
// instances and datastores of the consumer's own federation are ever
// candidates. Revision is left 0: numbering is the resolver loop's job.
func Resolve(snap *binding.Snapshot) *Result {
	e := newEngine(snap)
	res := &Result{}
	for _, m := range e.manifests {
		fed := manifest.FederationOf(m.Federation)
		plans := newPlans(m, e.templates)
		digest := binding.ManifestDigest(m)
		for _, region := range e.regionsOf(fed, m.ID) {
			b := e.bind(fed, m.ID, region, plans)
			b.Manifest = digest
			res.Bindings = append(res.Bindings, b)
		}
	}
	// Manifests are sorted by (federation, id) and regions with "" first,
	// so the bindings already are; sorting again would only cost time.
	return res
}

func (e *engine) bind(fed, service, region string, plans []plan) binding.Binding {
	b := binding.Binding{Federation: fed, Service: service, Region: region, Vars: make(map[string]binding.Var, len(plans))}
	for i := range plans {
		q := newQuery(&plans[i], fed, service, region)
		v, reason := e.resolveVar(&q)
		b.Vars[q.name] = e.withhold(&q, v)
		if reason != "" && !q.req.Optional {
			b.Unresolved = append(b.Unresolved, binding.Unresolved{Var: q.name, Key: q.display(), Reason: reason})
		}
	}
	return b
}

// engine is the state of one Resolve or Explain call: indexes built once
// and caches that make repeated requirements cheap. It is never shared.
type engine struct {
	manifests []*manifest.Manifest // sorted by (federation, id), unique
	feds      map[string]*fedIndex
	fedNames  []string                // sorted
	regions   map[serviceKey][]string // "" first, then the instances' regions
	templates map[string]parsedTemplate
	memo      map[memoKey]memoEntry // select-all answers, shared across bindings

	// unpublished indexes, by federation, the instances of services with
	// no manifest: they bind to nothing, but a binding lists them withheld.
	unpublished map[string]*fedIndex
	withheld    map[withheldKey]survey      // shared across bindings
	localPorts  map[serviceKey][]localClaim // by (federation, key); built on first use (local.go)
}

type serviceKey struct{ fed, service string }

// fedIndex is who provides what within one federation.
type fedIndex struct {
	byKey      map[string][]offer // providers of each key, by instance ID
	keys       []string           // every key instances provide, sorted
	globs      map[string][]group // pattern → groups of matching keys
	datastores map[string]string
	dsKeys     []string          // sorted
	refused    map[string]string // datastore keys whose stored value was refused, and why
}

// group is the instances offering one key, sorted by instance ID. A
// template's group has key "" since each instance offers several keys.
type group struct {
	key    string
	offers []offer
}

// offer is one instance's value of one key, kept beside the instance so
// that listing thousands of upstreams needs no map lookups.
type offer struct {
	in    *binding.Instance
	value string
	rank  int // the instance's place in ID order: sorting by it is cheap
}

func newEngine(snap *binding.Snapshot) *engine {
	e := &engine{
		feds:      map[string]*fedIndex{},
		regions:   map[serviceKey][]string{},
		templates: map[string]parsedTemplate{},
		memo:      map[memoKey]memoEntry{},

		unpublished: map[string]*fedIndex{},
		withheld:    map[withheldKey]survey{},
	}
	e.addManifests(snap.Manifests)
	e.addInstances(snap.Instances)
	for _, d := range snap.Datastores {
		if d.Refused != "" {
			e.fed(manifest.FederationOf(d.Federation)).refused[d.Key] = d.Refused
			continue
		}
		ds := e.fed(manifest.FederationOf(d.Federation)).datastores
		// Keys are unique in the registry; should one repeat, the smaller
		// value wins so that input order never matters.
		if old, ok := ds[d.Key]; !ok || d.Value < old {
			ds[d.Key] = d.Value
		}
	}
	for name, fi := range e.feds {
		e.fedNames = append(e.fedNames, name)
		fi.keys = slices.Sorted(maps.Keys(fi.byKey))
		fi.dsKeys = slices.Sorted(maps.Keys(fi.datastores))
	}
	slices.Sort(e.fedNames)
	for _, fi := range e.unpublished {
		fi.keys = slices.Sorted(maps.Keys(fi.byKey))
	}
	for k, rs := range e.regions {
		slices.Sort(rs[1:])
		e.regions[k] = slices.Compact(rs)
	}
	return e
}

func (e *engine) addManifests(ms []manifest.Manifest) {
	for i := range ms {
		e.manifests = append(e.manifests, &ms[i])
		e.fed(manifest.FederationOf(ms[i].Federation))
	}
	slices.SortStableFunc(e.manifests, func(a, b *manifest.Manifest) int {
		return cmp.Or(cmp.Compare(manifest.FederationOf(a.Federation), manifest.FederationOf(b.Federation)), cmp.Compare(a.ID, b.ID))
	})
	// The registry stores one manifest per (federation, id); a repeat here
	// would make two bindings with one name, so keep the first.
	e.manifests = slices.CompactFunc(e.manifests, func(a, b *manifest.Manifest) bool {
		return manifest.FederationOf(a.Federation) == manifest.FederationOf(b.Federation) && a.ID == b.ID
	})
}

// addInstances indexes the instances of published services. The manifest
// is the truth about a service: an instance whose service is unpublished
// binds to nothing, and an instance is public when its manifest says so now,
// whatever the flag it was registered with.
func (e *engine) addInstances(list []binding.Instance) {
	public := make(map[serviceKey]bool, len(e.manifests))
	for _, m := range e.manifests {
		public[serviceKey{manifest.FederationOf(m.Federation), m.ID}] = m.Public
	}
	insts := make([]*binding.Instance, 0, len(list))
	var unpublished []*binding.Instance
	for i := range list {
		in := list[i]
		pub, published := public[serviceKey{manifest.FederationOf(in.Federation), in.Service}]
		if !published {
			unpublished = append(unpublished, &in)
			continue
		}
		in.Public = pub
		insts = append(insts, &in)
	}
	// Sorting here rather than trusting the snapshot's order makes every
	// answer independent of how the snapshot was assembled.
	slices.SortFunc(insts, compareInstances)
	e.addUnpublished(unpublished)
	for rank, in := range insts {
		fed := manifest.FederationOf(in.Federation)
		fi := e.fed(fed)
		for k, v := range in.Provides {
			fi.byKey[k] = append(fi.byKey[k], offer{in, v, rank})
		}
		sk := serviceKey{fed, in.Service}
		rs, ok := e.regions[sk]
		if !ok {
			rs = []string{""}
		}
		if in.Region != "" {
			rs = append(rs, in.Region)
		}
		e.regions[sk] = rs
	}
}

// addUnpublished indexes instances of unpublished services apart, so that
// only the survey of withheld providers ever sees them.
func (e *engine) addUnpublished(insts []*binding.Instance) {
	slices.SortFunc(insts, compareInstances)
	for rank, in := range insts {
		fi, ok := e.unpublished[manifest.FederationOf(in.Federation)]
		if !ok {
			fi = newFedIndex()
			e.unpublished[manifest.FederationOf(in.Federation)] = fi
		}
		for k, v := range in.Provides {
			fi.byKey[k] = append(fi.byKey[k], offer{in, v, rank})
		}
	}
}

func compareInstances(a, b *binding.Instance) int {
	return cmp.Or(
		cmp.Compare(manifest.FederationOf(a.Federation), manifest.FederationOf(b.Federation)),
		cmp.Compare(a.ID, b.ID),
		cmp.Compare(a.Service, b.Service),
		cmp.Compare(a.Node, b.Node),
		cmp.Compare(a.Address, b.Address),
		cmp.Compare(a.Port, b.Port),
		cmp.Compare(a.Region, b.Region),
	)
}

func (e *engine) fed(name string) *fedIndex {
	fi, ok := e.feds[name]
	if !ok {
		fi = newFedIndex()
		e.feds[name] = fi
	}
	return fi
}

func newFedIndex() *fedIndex {
	return &fedIndex{byKey: map[string][]offer{}, globs: map[string][]group{}, datastores: map[string]string{}, refused: map[string]string{}}
}

func (e *engine) regionsOf(fed, service string) []string {
	if rs, ok := e.regions[serviceKey{fed, service}]; ok {
		return rs
	}
	return []string{""}
}

// match returns the groups of the keys pattern matches, cached because a
// few load balancers ask for the same glob from every region.
func (fi *fedIndex) match(pattern string) []group {
	if gs, ok := fi.globs[pattern]; ok {
		return gs
	}
	var gs []group
	for _, k := range fi.keys {
		if ok, _ := path.Match(pattern, k); ok {
			gs = append(gs, group{k, fi.byKey[k]})
		}
	}
	fi.globs[pattern] = gs
	return gs
}

// missing returns the keys the federation's datastores lack.
func (fi *fedIndex) missing(keys []string) []string {
	var out []string
	for _, k := range keys {
		if _, ok := fi.datastores[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// plan is one requirement prepared once per manifest, then asked from
// each of the service's regions.
type plan struct {
	name    string
	req     manifest.Requirement // Select and Region defaulted
	keys    []string             // the key (or glob), or the template's names
	tmpl    *manifest.Template   // set for a template requirement
	glob    bool                 // Key has wildcards
	invalid string               // why it cannot resolve whatever runs
	// needs is how many providers a listener needs to render the service's
	// files; below it, the var lists what policy withheld.
	needs int
}

type parsedTemplate struct {
	t    manifest.Template
	keys []string
	err  error
}

func newPlans(m *manifest.Manifest, cache map[string]parsedTemplate) []plan {
	plans := make([]plan, 0, len(m.Requires))
	need := templatesNeed(m)
	for _, name := range slices.Sorted(maps.Keys(m.Requires)) {
		p := newPlan(name, m.Requires[name], cache)
		p.needs = max(p.min(), need)
		plans = append(plans, p)
	}
	return plans
}

func newPlan(name string, req manifest.Requirement, cache map[string]parsedTemplate) plan {
	req.Select = cmp.Or(req.Select, manifest.SelectOne)
	req.Region = cmp.Or(req.Region, manifest.RegionPreferLocal)
	p := plan{name: name, req: req, keys: []string{req.Key}, glob: manifest.IsGlob(req.Key)}
	if req.Template != "" && req.Key == "" {
		pt, ok := cache[req.Template]
		if !ok {
			pt.t, pt.err = manifest.ParseTemplate(req.Template)
			pt.keys = pt.t.Names()
			cache[req.Template] = pt
		}
		p.tmpl, p.keys = &pt.t, pt.keys
		if pt.err != nil {
			p.invalid = pt.err.Error()
		}
	}
	p.invalid = cmp.Or(p.invalid, checkRequirement(req, p.keys))
	return p
}

// checkRequirement catches what validation rejects, so that a manifest
// written past the validator yields a reason instead of a guess.
func checkRequirement(r manifest.Requirement, keys []string) string {
	modes := []string{manifest.RegionPreferLocal, manifest.RegionLocalOnly, manifest.RegionAny}
	switch {
	case r.Select != manifest.SelectOne && r.Select != manifest.SelectAll:
		return fmt.Sprintf("select %q is not one or all", r.Select)
	case !slices.Contains(modes, r.Region):
		return fmt.Sprintf("region %q is not one of %s", r.Region, strings.Join(modes, ", "))
	case r.Key != "" && r.Template != "":
		return "it gives both key and template"
	case len(keys) == 0 || keys[0] == "":
		return "it names no provided key"
	case r.Select == manifest.SelectOne && manifest.IsGlob(r.Key):
		return fmt.Sprintf("key %q is a glob, which needs select: all", r.Key)
	case r.Select == manifest.SelectAll && r.Template != "":
		return "a template binds one provider; use select: one"
	}
	return ""
}

// display is what Unresolved.Key shows: the key, glob or template.
func (p *plan) display() string { return cmp.Or(p.req.Key, p.req.Template) }

// what names the provided key(s) in reasons.
func (p *plan) what() string { return strings.Join(p.keys, "+") }

func (p *plan) min() int {
	if p.req.Min == nil {
		return manifest.DefaultSelectAllMin
	}
	return max(*p.req.Min, 0)
}

// query is one requirement as seen by one consumer binding.
type query struct {
	*plan
	fed, service, region string
	seed                 uint64 // rendezvous hash state after consumer and region
	// explain asks for reasons even where Resolve drops them: an optional
	// var is never listed as unresolved, and its reason costs a survey.
	explain bool
}

func newQuery(p *plan, fed, service, region string) query {
	h := fnvString(fnvOffset, service)
	h = fnvString(fnvByte(h, 0), region)
	return query{plan: p, fed: fed, service: service, region: region, seed: fnvByte(h, 0)}
}

func (q *query) emptyVar() binding.Var {
	return binding.Var{Select: q.req.Select, Optional: q.req.Optional}
}

func (e *engine) resolveVar(q *query) (binding.Var, string) {
	if q.invalid != "" {
		return q.emptyVar(), "invalid requirement: " + q.invalid + "; fix the manifest (patchbay validate)"
	}
	fi := e.feds[q.fed]
	gs := fi.groups(q)
	if q.req.Via == manifest.ViaLocal {
		return e.selectLocal(q, gs)
	}
	if q.req.Select == manifest.SelectAll {
		return e.selectAll(q, fi, gs)
	}
	return e.selectOne(q, fi, gs)
}

// groups returns the instances that may offer what q needs. A template's
// candidates are the providers of its rarest key, since an instance
// offering the whole template is in every key's list.
func (fi *fedIndex) groups(q *query) []group {
	switch {
	case q.tmpl != nil:
		shortest := fi.byKey[q.keys[0]]
		for _, k := range q.keys[1:] {
			if l := fi.byKey[k]; len(l) < len(shortest) {
				shortest = l
			}
		}
		return []group{{"", shortest}}
	case q.glob:
		return fi.match(q.req.Key)
	}
	return []group{{q.req.Key, fi.byKey[q.req.Key]}}
}

func (e *engine) selectOne(q *query, fi *fedIndex, gs []group) (binding.Var, string) {
	narrowed := q.narrows(gs)
	if in := q.pick(gs, narrowed); in != nil {
		return q.bindInstance(in)
	}
	if q.datastoreVerdict(fi, false) == kept {
		return q.bindDatastore(fi)
	}
	return q.emptyVar(), e.why(q, nil, narrowed)
}

// pick returns the admitted instance with the highest rendezvous score.
func (q *query) pick(gs []group, narrowed bool) *binding.Instance {
	var best *binding.Instance
	var bestScore uint64
	for _, g := range gs {
		for _, o := range g.offers {
			in := o.in
			if q.judge(in, narrowed) != kept {
				continue
			}
			if s := q.score(in); best == nil || beats(s, in, bestScore, best) {
				best, bestScore = in, s
			}
		}
	}
	return best
}

func (q *query) bindInstance(in *binding.Instance) (binding.Var, string) {
	v := q.emptyVar()
	if q.tmpl == nil {
		val := in.Provides[q.req.Key]
		v.Value, v.Providers, v.Resolved = val, []binding.Provider{instanceProvider(in, q.req.Key, val)}, true
		return v, ""
	}
	val, err := q.tmpl.Expand(in.Provides)
	if err != nil { // judge admitted only complete instances; kept for safety
		return q.emptyVar(), fmt.Sprintf("cannot expand %q from %s: %v", q.req.Template, in.ID, err)
	}
	v.Value, v.Resolved = val, true
	for _, k := range sortedCopy(q.keys) {
		v.Providers = append(v.Providers, instanceProvider(in, k, in.Provides[k]))
	}
	return v, ""
}

func (q *query) bindDatastore(fi *fedIndex) (binding.Var, string) {
	v := q.emptyVar()
	v.Providers = datastoreProviders(fi, q.keys)
	if q.tmpl == nil {
		v.Value = fi.datastores[q.req.Key]
	} else if val, err := q.tmpl.Expand(fi.datastores); err == nil {
		v.Value = val
	}
	v.Resolved = true
	return v, ""
}

func datastoreProviders(fi *fedIndex, keys []string) []binding.Provider {
	ps := make([]binding.Provider, 0, len(keys))
	for _, k := range sortedCopy(keys) {
		ps = append(ps, binding.Provider{Key: k, Value: fi.datastores[k], Datastore: true})
	}
	return ps
}

func instanceProvider(in *binding.Instance, key, value string) binding.Provider {
	return binding.Provider{
		Key: key, Value: value,
		Service: in.Service, Instance: in.ID, Node: in.Node, Address: in.Address,
		Port: in.Port, Region: in.Region, Public: in.Public,
	}
}

func sortedCopy(s []string) []string {
	if slices.IsSorted(s) {
		return s
	}
	return slices.Sorted(slices.Values(s))
}

// memoKey is everything a select-all answer depends on: it ignores the
// consumer, so every binding asking the same thing shares one answer.
type memoKey struct {
	fed, key, mode, scope string // scope: the region when narrowed
	public, narrowed, opt bool
	min                   int
}

type memoEntry struct {
	v      binding.Var
	reason string
}

func (e *engine) selectAll(q *query, fi *fedIndex, gs []group) (binding.Var, string) {
	narrowed := q.narrows(gs)
	mk := memoKey{fed: q.fed, key: q.req.Key, mode: q.req.Region, public: q.req.Public, narrowed: narrowed, opt: q.req.Optional, min: q.min()}
	if narrowed {
		mk.scope = q.region
	}
	if m, ok := e.memo[mk]; ok {
		return m.v, m.reason
	}
	v, reason := q.emptyVar(), ""
	v.Providers = q.listed(gs, narrowed)
	if len(v.Providers) == 0 && q.datastoreVerdict(fi, false) == kept {
		v.Providers = datastoreProviders(fi, q.keys)
	}
	if len(v.Providers) < q.min() {
		reason = e.why(q, v.Providers, narrowed)
	} else {
		v.Value, v.Resolved = binding.JoinValues(v.Providers), true
	}
	e.memo[mk] = memoEntry{v, reason}
	return v, reason
}

// listed returns every admitted (instance, key) pair, sorted, in a slice
// of exact size: providers are large and a load balancer lists tens of
// thousands.
func (q *query) listed(gs []group, narrowed bool) []binding.Provider {
	if len(gs) == 1 { // one group is in instance order already
		return q.listedGroup(gs[0], narrowed)
	}
	// Sorting packed integers rather than structs: the rank gives instance
	// order and the group index key order, as match returns keys sorted.
	var order []uint64
	for gi, g := range gs {
		for _, o := range g.offers {
			if q.judge(o.in, narrowed) == kept {
				order = append(order, uint64(o.rank)<<32|uint64(gi))
			}
		}
	}
	if len(order) == 0 {
		return nil
	}
	slices.Sort(order)
	ps := make([]binding.Provider, len(order))
	for i, x := range order {
		g := gs[x&(1<<32-1)]
		j, _ := slices.BinarySearchFunc(g.offers, int(x>>32), func(o offer, rank int) int { return cmp.Compare(o.rank, rank) })
		ps[i] = instanceProvider(g.offers[j].in, g.key, g.offers[j].value)
	}
	return ps
}

func (q *query) listedGroup(g group, narrowed bool) []binding.Provider {
	n := 0
	for _, o := range g.offers {
		if q.judge(o.in, narrowed) == kept {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	ps := make([]binding.Provider, 0, n)
	for _, o := range g.offers {
		if q.judge(o.in, narrowed) == kept {
			ps = append(ps, instanceProvider(o.in, g.key, o.value))
		}
	}
	return ps
}

// unread stands in for the reason of an optional var outside Explain.
const unread = "unresolved"

// why returns the reason q did not resolve, given what was listed.
func (e *engine) why(q *query, listed []binding.Provider, narrowed bool) string {
	if q.req.Optional && !q.explain {
		return unread
	}
	return e.whyFewer(q, listed, narrowed) + e.refusedNote(q)
}

// refusedNote names the datastore values q would have fallen back to but
// that were refused when read: the operator's fix is that key.
func (e *engine) refusedNote(q *query) string {
	fi := e.feds[q.fed]
	if fi == nil || len(fi.refused) == 0 || q.glob || q.req.Public {
		return ""
	}
	var notes []string
	for _, k := range sortedCopy(q.keys) {
		if why, ok := fi.refused[k]; ok {
			notes = append(notes, "the datastore value of "+k+" was refused ("+why+")")
		}
	}
	if len(notes) == 0 {
		return ""
	}
	return "; " + strings.Join(notes, "; ")
}

// verdict is what the rules decided about one candidate. Resolve only
// compares it with kept; Explain words it.
type verdict uint8

const (
	kept verdict = iota
	otherFederation
	incomplete // lacks some key of the template
	notPublic
	notLocal
	lowerScore
	liveBeatsDatastore
	datastoreNotPublic
	datastoreGlob
	datastoreIncomplete
	numVerdicts
)

// judge applies the rules that concern one instance alone; narrowed says
// whether the region filter keeps only the consumer's region.
func (q *query) judge(in *binding.Instance, narrowed bool) verdict {
	switch {
	case manifest.FederationOf(in.Federation) != q.fed:
		return otherFederation
	case q.tmpl != nil && !providesAll(in, q.keys):
		return incomplete
	case q.req.Public && !in.Public:
		return notPublic
	case narrowed && in.Region != q.region:
		return notLocal
	}
	return kept
}

func providesAll(in *binding.Instance, keys []string) bool {
	for _, k := range keys {
		if _, ok := in.Provides[k]; !ok {
			return false
		}
	}
	return true
}

// narrows reports whether only providers in the consumer's region count:
// always for local-only, never for any, and for prefer-local when the
// region has an otherwise admissible provider. A consumer in no region
// prefers nothing.
func (q *query) narrows(gs []group) bool {
	switch q.req.Region {
	case manifest.RegionLocalOnly:
		return true
	case manifest.RegionAny:
		return false
	}
	if q.region == "" {
		return false
	}
	for _, g := range gs {
		for _, o := range g.offers {
			if o.in.Region == q.region && q.judge(o.in, false) == kept {
				return true
			}
		}
	}
	return false
}

// datastoreVerdict decides whether the federation's datastores may serve
// q; liveKept says whether a live instance was admitted.
func (q *query) datastoreVerdict(fi *fedIndex, liveKept bool) verdict {
	switch {
	case q.req.Public:
		return datastoreNotPublic
	case q.glob:
		return datastoreGlob
	case liveKept:
		return liveBeatsDatastore
	case len(fi.missing(q.keys)) > 0:
		return datastoreIncomplete
	}
	return kept
}

// Rendezvous hashing: every node of a consumer in a region computes the
// same scores, and removing a provider moves only the consumers it won.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvByte(h uint64, c byte) uint64 { return (h ^ uint64(c)) * fnvPrime }

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = fnvByte(h, s[i])
	}
	return h
}

// score is fnv-1a 64 of service "\x00" region "\x00" instance ID.
func (q *query) score(in *binding.Instance) uint64 { return fnvString(q.seed, in.ID) }

// beats orders candidates by score, then by ID so that even a hash tie
// has one answer.
func beats(s uint64, a *binding.Instance, t uint64, b *binding.Instance) bool {
	return s > t || (s == t && a.ID < b.ID)
}
