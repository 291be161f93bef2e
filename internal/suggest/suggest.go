// Package suggest finds the known word a mistyped one most likely meant.
package suggest

import "strings"

// Closest returns the known word nearest to w by edit distance, ignoring
// case, when it is near enough to be a typo: at most 2 edits for short
// words, up to 3 for long ones.
func Closest(w string, known []string) (string, bool) {
	limit := min(3, max(2, len(w)/3))
	best, bestDist := "", limit+1
	for _, k := range known {
		if d := distance(strings.ToLower(w), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best, best != ""
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
