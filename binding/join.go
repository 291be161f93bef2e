package binding

import "strings"

// JoinValues is the value of a select-all requirement: its providers' values
// joined by commas, in order.
func JoinValues(ps []Provider) string {
	n := max(len(ps)-1, 0)
	for _, p := range ps {
		n += len(p.Value)
	}
	var b strings.Builder
	b.Grow(n)
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.Value)
	}
	return b.String()
}
