package resolver

import "slices"

// Redacted returns a copy of x with its secrets masked.
func (x *Explanation) Redacted() *Explanation {
	out := *x
	out.Candidates = slices.Clone(x.Candidates)
	for i, c := range out.Candidates {
		out.Candidates[i].Provider = c.Redacted(x.Var)
	}
	out.Winners = slices.Clone(x.Winners)
	for i, p := range out.Winners {
		out.Winners[i] = p.Redacted(x.Var)
	}
	out.Result = x.Result.Redacted(x.Var)
	return &out
}
