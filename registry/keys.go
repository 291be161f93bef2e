package registry

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// keys is patchbay's KV layout under its prefix. The resolver's inputs live
// under one subtree (registry/) so that a single blocking query watches them
// all, and writes elsewhere (bindings, status) do not wake it:
//
//	registry/manifests/<fed>/<service>             normalized manifest JSON
//	registry/instances/<fed>/<service>/<instance>  instance JSON, held by its owner's session
//	registry/datastores/<fed>/<KEY>                static provider value
//	indexes/<fed>/<service>/<n>                    held by the session of the instance numbered n
//	locks/unique/<fed>/<service>                   held by the live instance of a unique service
//	locks/leader/<name>                            held by the active resolver
//	bindings/<fed>/<service>/<region>              the resolver's output; region "" is "_"
//	status/<node>                                  a node's last provision
//	rollout/<fed>/<group>/halt                     halt flag; rollout/<fed>/<group>/slots/ the semaphore
type keys struct{ prefix string }

func (k keys) inputs() string                 { return k.prefix + "registry/" }
func (k keys) manifests() string              { return k.prefix + "registry/manifests/" }
func (k keys) manifest(fed, id string) string { return k.manifests() + fed + "/" + id }
func (k keys) instances() string              { return k.prefix + "registry/instances/" }
func (k keys) instance(fed, service, id string) string {
	return k.instances() + fed + "/" + service + "/" + id
}
func (k keys) datastores() string               { return k.prefix + "registry/datastores/" }
func (k keys) datastore(fed, key string) string { return k.datastores() + fed + "/" + key }
func (k keys) indexes(fed, service string) string {
	return k.prefix + "indexes/" + fed + "/" + service + "/"
}
func (k keys) uniqueLock(fed, service string) string {
	return k.prefix + "locks/unique/" + fed + "/" + service
}
func (k keys) bindings() string { return k.prefix + "bindings/" }

// binding keeps the region "" (consumers with no region) at "_", since a
// KV path segment cannot be empty.
func (k keys) binding(fed, service, region string) string {
	if region == "" {
		region = noRegion
	}
	return k.bindings() + fed + "/" + service + "/" + region
}

const noRegion = "_"

func regionFromKey(seg string) string {
	if seg == noRegion {
		return ""
	}
	return seg
}

func (k keys) leader(name string) string { return k.prefix + "locks/leader/" + name }

func (k keys) status() string                { return k.prefix + "status/" }
func (k keys) nodeStatus(node string) string { return k.status() + node }
func (k keys) rollouts() string              { return k.prefix + "rollout/" }
func (k keys) rollout(fed, group string) string {
	return k.rollouts() + fed + "/" + group + "/"
}

// parts splits key below base into its path segments, checking the count.
// Keys are written by whoever may write the prefix: one that is not
// printable text is refused here, and named quoted, so that no key can
// break the one-line errors, logs and terminal lines that name it.
func parts(key, base string, n int) ([]string, error) {
	rest, ok := strings.CutPrefix(key, base)
	p := strings.Split(rest, "/")
	switch {
	case !printable(key):
		return nil, fmt.Errorf("%q: the key holds a control character or a byte that is not UTF-8; delete it", key)
	case !ok || len(p) != n || slices.Contains(p, ""):
		return nil, fmt.Errorf("%s: unexpected key layout, want %s followed by %d segments", key, base, n)
	}
	return p, nil
}

// printable reports whether s is UTF-8 text without control characters:
// safe to name as it is in a one-line message.
func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// ShownKey is key as a message names it: as it is when printable, quoted
// otherwise.
func ShownKey(key string) string {
	if printable(key) {
		return key
	}
	return strconv.Quote(key)
}
