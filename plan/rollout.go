package plan

import (
	"cmp"
	"maps"
	"slices"

	"github.com/patchbay/patchbay/model"
)

// RolloutChange is a rollout group whose nodes would apply the change a
// few at a time.
type RolloutChange struct {
	Federation  string   `json:"federation"`
	Group       string   `json:"group"`
	Concurrency int      `json:"concurrency"`
	Nodes       []string `json:"nodes"`
}

// rollouts gathers the groups of the services that would apply.
func (s *sides) rollouts(nodes []NodeChange) []RolloutChange {
	groups := map[svcKey]*RolloutChange{} // (federation, group)
	for _, nc := range nodes {
		for _, run := range nc.Services {
			if run.RolloutGroup == "" || !applies(run) {
				continue
			}
			k := svcKey{run.Federation, run.RolloutGroup}
			g := groups[k]
			if g == nil {
				g = &RolloutChange{Federation: run.Federation, Group: run.RolloutGroup}
				groups[k] = g
			}
			if m := s.after.manifests[svcKey{run.Federation, run.Service}]; m != nil && m.Rollout != nil {
				g.Concurrency = max(g.Concurrency, m.Rollout.Concurrency)
			}
			if !slices.Contains(g.Nodes, nc.Node) {
				g.Nodes = append(g.Nodes, nc.Node)
			}
		}
	}
	var out []RolloutChange
	for _, k := range slices.SortedFunc(maps.Keys(groups), func(a, b svcKey) int {
		return cmp.Or(cmp.Compare(a.fed, b.fed), cmp.Compare(a.service, b.service))
	}) {
		out = append(out, *groups[k])
	}
	return out
}

// applies reports whether a run installs anything: it is ok, or a policy
// render of a skipped service changes files.
func applies(run model.ServiceRun) bool {
	return run.Result == model.ResultOK || slices.ContainsFunc(run.Templates, func(t model.TemplateRun) bool { return t.Changed })
}
