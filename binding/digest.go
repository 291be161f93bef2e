package binding

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/patchbay/patchbay/manifest"
)

// ManifestDigest identifies a manifest's content: its canonical JSON (maps
// encode with sorted keys), hashed.
func ManifestDigest(m *manifest.Manifest) string {
	data, err := json.Marshal(m)
	if err != nil { // a manifest is strings, numbers, maps and slices
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}
