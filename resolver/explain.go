package resolver

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/errkind"
	"github.com/patchbay/patchbay/internal/suggest"
	"github.com/patchbay/patchbay/manifest"
)

// Explain errors.
var (
	ErrUnknownService = errkind.New(errkind.Input, "resolver: unknown service")
	ErrUnknownVar     = errkind.New(errkind.Input, "resolver: unknown variable")
)

// Explanation is how one variable of one service binding was decided.
type Explanation struct {
	Federation  string               `json:"federation"`
	Service     string               `json:"service"`
	Region      string               `json:"region"`
	Var         string               `json:"var"`
	Requirement manifest.Requirement `json:"requirement"`
	// LocalOnly says the region filter kept only providers in Region.
	LocalOnly bool `json:"local_only"`
	// Candidates lists every instance and datastore, in any federation,
	// offering a key the requirement draws on: the consumer's federation
	// first, then the others by name; instances by (ID, key), then
	// datastores by key; last, instance keys that are not live (never
	// candidates to Resolve), with why.
	Candidates []Candidate        `json:"candidates"`
	Winners    []binding.Provider `json:"winners,omitempty"` // the providers Result holds
	Result     binding.Var        `json:"result"`            // what Resolve binds
	Reason     string             `json:"reason,omitempty"`  // why Result did not resolve
}

// Candidate is one (provider, key) pair considered and the verdict on it.
type Candidate struct {
	Federation string `json:"federation"`
	binding.Provider
	// Score is the rendezvous score, for select-one candidates that passed
	// every filter.
	Score  uint64 `json:"score,omitempty"`
	Kept   bool   `json:"kept"` // it is in the resulting Var
	Reason string `json:"reason"`
}

// Explain tells how Resolve binds varName of service for consumers in
// region, listing every candidate and why it was kept or dropped. A region
// in which the service runs no instance is explained as if it did.
func Explain(snap *binding.Snapshot, fed, service, region, varName string) (*Explanation, error) {
	e := newEngine(snap)
	fed = manifest.FederationOf(fed)
	m, err := e.lookupManifest(fed, service)
	if err != nil {
		return nil, err
	}
	req, ok := m.Requires[varName]
	if !ok {
		return nil, unknownVar(m, varName)
	}
	p := newPlan(varName, req, e.templates)
	p.needs = max(p.min(), templatesNeed(m))
	q := newQuery(&p, fed, service, region)
	q.explain = true
	x := &Explanation{Federation: fed, Service: service, Region: region, Var: varName, Requirement: p.req}
	x.Result, x.Reason = e.resolveVar(&q)
	x.Result = e.withhold(&q, x.Result)
	x.Winners = x.Result.Providers
	if p.invalid != "" {
		return x, nil
	}
	x.LocalOnly = q.narrows(e.feds[fed].groups(&q))
	x.Candidates = q.candidates(e.survey(&q, x.LocalOnly))
	notLive := q.notLiveCandidates(snap.NotLive)
	x.Candidates = append(x.Candidates, notLive...)
	if !x.Result.Resolved && len(notLive) > 0 {
		x.Reason += fmt.Sprintf("; %s not live, listed with why", count(len(notLive), "instance key"))
	}
	return x, nil
}

// notLiveCandidates lists the instance keys the registry found not live
// (no session, a session of another node, a value rewritten since) that
// offer a key q draws on: Resolve never sees them, so only Explain can say
// why they did not bind.
func (q *query) notLiveCandidates(nl []binding.NotLiveInstance) []Candidate {
	var out []Candidate
	for i := range nl {
		in := &nl[i].Instance
		for _, k := range slices.Sorted(maps.Keys(in.Provides)) {
			if q.drawsOn(k) {
				c := Candidate{Federation: manifest.FederationOf(in.Federation), Provider: instanceProvider(in, k, in.Provides[k]), Reason: "not live: " + nl[i].Reason}
				out = append(out, c)
			}
		}
	}
	return out
}

// drawsOn reports whether q would take a provider of key.
func (q *query) drawsOn(key string) bool {
	if q.glob {
		ok, _ := path.Match(q.req.Key, key)
		return ok
	}
	return slices.Contains(q.keys, key)
}

func (e *engine) lookupManifest(fed, service string) (*manifest.Manifest, error) {
	var names, elsewhere []string
	for _, m := range e.manifests {
		switch {
		case manifest.FederationOf(m.Federation) == fed && m.ID == service:
			return m, nil
		case manifest.FederationOf(m.Federation) == fed:
			names = append(names, m.ID)
		case m.ID == service:
			elsewhere = append(elsewhere, manifest.FederationOf(m.Federation))
		}
	}
	hint := ""
	if len(elsewhere) > 0 {
		hint = fmt.Sprintf("; it exists in federation %s", strings.Join(elsewhere, ", "))
	} else if s, ok := suggest.Closest(service, names); ok {
		hint = fmt.Sprintf("; did you mean %q?", s)
	}
	return nil, fmt.Errorf("%w %q in federation %s%s", ErrUnknownService, service, fed, hint)
}

func unknownVar(m *manifest.Manifest, varName string) error {
	vars := slices.Sorted(maps.Keys(m.Requires))
	hint := "; it requires nothing"
	if len(vars) > 0 {
		hint = "; it requires " + strings.Join(vars, ", ")
	}
	if s, ok := suggest.Closest(varName, vars); ok {
		hint += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return fmt.Errorf("%w %q of service %s%s", ErrUnknownVar, varName, m.ID, hint)
}

// row is one candidate: an instance or a datastore offering one key,
// with the verdict of the same rules Resolve applies.
type row struct {
	fed        string
	inst       *binding.Instance // nil for a datastore
	key, value string
	verdict    verdict
	missing    []string // the template keys lacking, when incomplete
}

// survey judges every provider of what q needs in every federation; it is
// the slow path behind reasons and Explain.
func (e *engine) survey(q *query, narrowed bool) []row {
	var rows []row
	for _, fed := range e.fedOrder(q.fed) {
		fi := e.feds[fed]
		start := len(rows)
		rows = q.instanceRows(rows, fed, fi, narrowed)
		liveKept := slices.ContainsFunc(rows[start:], func(r row) bool { return r.verdict == kept })
		rows = q.datastoreRows(rows, fed, fi, liveKept)
	}
	return rows
}

// fedOrder lists the consumer's federation first, then the others.
func (e *engine) fedOrder(own string) []string {
	out := []string{own}
	for _, f := range e.fedNames {
		if f != own {
			out = append(out, f)
		}
	}
	return out
}

func (q *query) instanceRows(rows []row, fed string, fi *fedIndex, narrowed bool) []row {
	if q.tmpl == nil {
		start := len(rows)
		for _, g := range fi.groups(q) {
			for _, o := range g.offers {
				rows = append(rows, row{fed: fed, inst: o.in, key: g.key, value: o.value, verdict: q.judge(o.in, narrowed)})
			}
		}
		slices.SortFunc(rows[start:], func(a, b row) int {
			return compareProviders(binding.Provider{Instance: a.inst.ID, Key: a.key}, binding.Provider{Instance: b.inst.ID, Key: b.key})
		})
		return rows
	}
	for _, in := range templateOffers(fi, q.keys) {
		r := row{fed: fed, inst: in, verdict: q.judge(in, narrowed)}
		if r.verdict == incomplete {
			r.missing = missingKeys(in, q.keys)
		}
		for _, k := range sortedCopy(q.keys) {
			if val, ok := in.Provides[k]; ok {
				r.key, r.value = k, val
				rows = append(rows, r)
			}
		}
	}
	return rows
}

// templateOffers returns every instance providing any of keys, by ID.
func templateOffers(fi *fedIndex, keys []string) []*binding.Instance {
	var out []*binding.Instance
	for _, k := range keys {
		for _, o := range fi.byKey[k] {
			out = append(out, o.in)
		}
	}
	slices.SortFunc(out, compareInstances)
	return slices.Compact(out)
}

func (q *query) datastoreRows(rows []row, fed string, fi *fedIndex, liveKept bool) []row {
	v, missing := otherFederation, fi.missing(q.keys)
	if fed == q.fed {
		v = q.datastoreVerdict(fi, liveKept)
	}
	for _, k := range q.datastoreKeys(fi) {
		rows = append(rows, row{fed: fed, key: k, value: fi.datastores[k], verdict: v, missing: missing})
	}
	return rows
}

// datastoreKeys returns the keys of fi's datastores that q draws on.
func (q *query) datastoreKeys(fi *fedIndex) []string {
	var out []string
	if !q.glob {
		for _, k := range sortedCopy(q.keys) {
			if _, ok := fi.datastores[k]; ok {
				out = append(out, k)
			}
		}
		return out
	}
	for _, k := range fi.dsKeys {
		if ok, _ := path.Match(q.req.Key, k); ok {
			out = append(out, k)
		}
	}
	return out
}

// candidates words the verdicts of rows; for select one, the admitted
// instance that beats every other is the one chosen.
func (q *query) candidates(rows []row) []Candidate {
	var winner *binding.Instance
	var best uint64
	for _, r := range rows {
		if q.req.Select == manifest.SelectOne && q.req.Via != manifest.ViaLocal && r.inst != nil && r.verdict == kept {
			if s := q.score(r.inst); winner == nil || beats(s, r.inst, best, winner) {
				winner, best = r.inst, s
			}
		}
	}
	out := make([]Candidate, 0, len(rows))
	for _, r := range rows {
		c := Candidate{Federation: r.fed, Provider: binding.Provider{Key: r.key, Value: r.value, Datastore: true}}
		v := r.verdict
		if r.inst != nil {
			c.Provider = instanceProvider(r.inst, r.key, r.value)
			if winner != nil && v == kept {
				c.Score = q.score(r.inst)
				if r.inst != winner {
					v = lowerScore
				}
			}
		}
		c.Kept, c.Reason = v == kept, q.word(v, r)
		out = append(out, c)
	}
	return out
}

// word is the sentence Explain gives for a verdict.
func (q *query) word(v verdict, r row) string {
	switch v {
	case kept:
		return q.wordKept(r)
	case otherFederation:
		return "other federation " + r.fed
	case incomplete:
		return "lacks " + strings.Join(r.missing, ", ") + " of the template"
	case notPublic:
		return "not public"
	case notLocal:
		return fmt.Sprintf("%s, not local (%s)", regionLabel(r.inst.Region), q.localRule())
	case lowerScore:
		return "lower rendezvous score"
	case liveBeatsDatastore:
		return "live providers beat datastores"
	case datastoreNotPublic:
		return "datastores are never public"
	case datastoreGlob:
		return "a glob takes live providers only"
	case datastoreIncomplete:
		return "the datastores lack " + strings.Join(r.missing, ", ")
	}
	return "unknown verdict"
}

func (q *query) wordKept(r row) string {
	switch {
	case r.inst == nil:
		return "chosen: no live provider remains, so the datastore serves"
	case q.req.Select == manifest.SelectAll:
		return "listed: select all takes every admitted provider"
	case q.req.Via == manifest.ViaLocal:
		return "served: a server of the node's local load balancer (via: local)"
	}
	return "chosen: highest rendezvous score"
}

func (q *query) localRule() string {
	if q.req.Region == manifest.RegionPreferLocal {
		return fmt.Sprintf("prefer-local, and %s has providers", regionLabel(q.region))
	}
	return q.req.Region
}

func regionLabel(r string) string {
	if r == "" {
		return "no region"
	}
	return "region " + r
}

func missingKeys(in *binding.Instance, keys []string) []string {
	var out []string
	for _, k := range keys {
		if _, ok := in.Provides[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// tally counts a survey for reasons: own-federation providers by verdict
// and providers in other federations. A template counts each instance
// once, and elsewhere only instances (or datastores) offering every key.
type tally struct {
	own       [numVerdicts]int
	others    map[string]int
	dsMissing []string // keys the own federation's datastores lack
}

func (e *engine) tally(q *query, narrowed bool) *tally {
	t := &tally{others: map[string]int{}, dsMissing: e.feds[q.fed].missing(q.keys)}
	var prev *binding.Instance
	dsCounted := map[string]bool{}
	for _, r := range e.survey(q, narrowed) {
		if q.tmpl != nil && !firstOfProvider(r, prev, dsCounted) {
			continue
		}
		prev = r.inst
		switch {
		case r.fed == q.fed:
			if r.inst != nil {
				t.own[r.verdict]++
			}
		case q.tmpl == nil || (r.inst != nil && providesAll(r.inst, q.keys)) || (r.inst == nil && len(r.missing) == 0):
			t.others[r.fed]++
		}
	}
	return t
}

// firstOfProvider reports whether r is the first row of its instance, or
// of its federation's datastores: a template offers several keys per row.
func firstOfProvider(r row, prev *binding.Instance, dsCounted map[string]bool) bool {
	if r.inst != nil {
		return r.inst != prev
	}
	first := !dsCounted[r.fed]
	dsCounted[r.fed] = true
	return first
}

// whyNone explains why no provider at all serves q.
func (e *engine) whyNone(q *query, narrowed bool) string {
	t := e.tally(q, narrowed)
	complete := t.own[kept] + t.own[notPublic] + t.own[notLocal]
	public := t.own[kept] + t.own[notLocal]
	switch {
	case complete == 0:
		return q.noProvider(t)
	case public == 0:
		none := "none is public"
		if complete == 1 {
			none = "it is not public"
		}
		return fmt.Sprintf("%s of %s %s but %s (this requirement takes public services only)%s",
			count(complete, "provider"), q.what(), verb(complete, "exists", "exist"), none, q.datastoreNote(t))
	}
	return q.noneLocal(public, t)
}

func (q *query) noProvider(t *tally) string {
	s := fmt.Sprintf("no live provider of %s in federation %s", q.what(), q.fed)
	if n := t.own[incomplete]; q.tmpl != nil && n > 0 {
		s = fmt.Sprintf("no instance provides all of %s (%s %s only some)", strings.Join(q.keys, ", "), count(n, "instance"), verb(n, "has", "have"))
	}
	return s + q.datastoreNote(t) + othersNote(t.others)
}

// noneLocal explains a region filter that left nothing: local-only, or a
// consumer in no region asking local-only.
func (q *query) noneLocal(public int, t *tally) string {
	n := public - t.own[kept]
	if q.region == "" {
		return fmt.Sprintf("no live provider of %s without a region (region: %s, for consumers in no region)%s; %d %s in regions",
			q.what(), q.req.Region, q.datastoreNote(t), n, verb(n, "exists", "exist"))
	}
	return fmt.Sprintf("no live provider of %s in region %s (region: %s)%s; %d %s in other regions",
		q.what(), q.region, q.req.Region, q.datastoreNote(t), n, verb(n, "exists", "exist"))
}

// datastoreNote says why the datastores did not serve either.
func (q *query) datastoreNote(t *tally) string {
	switch {
	case q.glob:
		return "" // globs take live providers only: nothing to add
	case q.req.Public && len(t.dsMissing) == 0:
		return "; the datastore cannot serve it, datastores are never public"
	case q.req.Public || len(t.dsMissing) == 0:
		return ""
	case len(t.dsMissing) == len(q.keys):
		return " and no datastore"
	}
	return " and the datastores lack " + strings.Join(t.dsMissing, ", ")
}

func othersNote(others map[string]int) string {
	if len(others) == 0 {
		return ""
	}
	var parts []string
	for i, fed := range slices.Sorted(maps.Keys(others)) {
		n := others[fed]
		if i == 0 {
			parts = append(parts, fmt.Sprintf("%d %s in federation %s", n, verb(n, "exists", "exist"), fed))
		} else {
			parts = append(parts, fmt.Sprintf("%d in federation %s", n, fed))
		}
	}
	return "; " + joinAnd(parts) + ", which it cannot use"
}

// whyFewer explains a select-all list shorter than its min.
func (e *engine) whyFewer(q *query, ps []binding.Provider, narrowed bool) string {
	switch {
	case len(ps) == 0 && q.req.Select == manifest.SelectAll && q.min() > 1:
		return fmt.Sprintf("%s (select all needs at least %d)", e.whyNone(q, narrowed), q.min())
	case len(ps) == 0:
		return e.whyNone(q, narrowed)
	case ps[0].Datastore:
		return fmt.Sprintf("only the datastore provides %s, fewer than min %d", q.what(), q.min())
	}
	t := e.tally(q, narrowed)
	s := fmt.Sprintf("%s of %s, fewer than min %d", count(len(ps), "live provider"), q.what(), q.min())
	if n := t.own[notLocal]; n > 0 {
		rule := "region: " + q.req.Region
		if q.req.Region == manifest.RegionPreferLocal {
			rule += ", which uses them only when " + regionLabel(q.region) + " has none"
		}
		s += fmt.Sprintf("; %d more in other regions (%s)", n, rule)
	}
	if n := t.own[notPublic]; n > 0 {
		s += fmt.Sprintf("; %d more not public", n)
	}
	return s
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func joinAnd(parts []string) string {
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
