package bench

import (
	"math"
	"slices"
	"time"
)

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of ds: the
// smallest value that at least p % of the values do not exceed. It is 0
// for no values.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// Mean is the average of xs, 0 for none.
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// Ratio is patchbay's figure over consul-template's, NaN when either is
// missing or consul-template's is 0.
func Ratio(patchbay, consulTemplate float64) float64 {
	if consulTemplate == 0 || math.IsNaN(patchbay) || math.IsNaN(consulTemplate) {
		return math.NaN()
	}
	return patchbay / consulTemplate
}
