package manifest

import (
	"fmt"
	"maps"
	"slices"
)

// Unprovided warns about every requirement of set's services that draws on
// a key nothing provides: no service of set, no datastores file of set, and
// none of elsewhere (the keys of published manifests and datastores, which
// the caller reads). Such a requirement is valid, a provider may come
// later, but it is most often a typo that would surface only as "no live
// provider" at resolve; the warning names the closest known key.
func Unprovided(set *Set, elsewhere []string) Problems {
	known := map[string]bool{}
	for _, k := range elsewhere {
		known[k] = true
	}
	for _, s := range set.Services {
		for k := range s.Manifest.Provides {
			known[k] = true
		}
	}
	for _, d := range set.Datastores {
		for k := range d.Datastores.Values {
			known[k] = true
		}
	}
	keys := slices.Sorted(maps.Keys(known))
	var probs Problems
	for _, s := range set.Services {
		for _, name := range slices.Sorted(maps.Keys(s.Manifest.Requires)) {
			for _, k := range s.Manifest.Requires[name].Keys() {
				if known[k] || IsGlob(k) {
					continue
				}
				p := s.fieldAt("requires", name)
				p.Message = fmt.Sprintf("requires %s: no service or datastore provides %s%s", name, k, suggest(k, keys))
				probs = append(probs, p)
			}
		}
	}
	return probs.sorted()
}
