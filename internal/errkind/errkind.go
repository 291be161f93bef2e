// Package errkind gives every sentinel error of patchbay a kind: the user's
// input is wrong, or a backend (Consul, NATS, HAProxy, the host) failed.
// The kind is stated where the sentinel is declared, so that a new one is
// classified by whoever writes it; cmd/patchbay turns kinds into exit codes.
package errkind

import (
	"errors"
	"sync"
)

// Kind says whose move it is after an error.
type Kind int

const (
	// Unknown: no sentinel of a kind is in the chain.
	Unknown Kind = iota
	// Input: the command line, a manifest, a template or a config file is
	// wrong, or the cluster's state makes the request impossible; retrying
	// the same thing fails the same way.
	Input
	// Backend: Consul, NATS, HAProxy or a command on the host failed or did
	// not answer; the same request may succeed later.
	Backend
)

var (
	mu        sync.RWMutex
	sentinels = map[Kind][]error{}
)

// New returns a sentinel error of kind k with text msg.
func New(k Kind, msg string) error {
	err := errors.New(msg)
	Declare(k, err)
	return err
}

// Declare gives existing sentinels (of a package that does not use New)
// kind k.
func Declare(k Kind, errs ...error) {
	mu.Lock()
	defer mu.Unlock()
	sentinels[k] = append(sentinels[k], errs...)
}

// Of returns the kind of err: Input when a sentinel of that kind is in its
// chain (errors.Is, so types with an Is method count), else Backend when one
// of that kind is, else Unknown. Input wins because an error that is the
// user's to fix stays so however a backend answered on the way.
func Of(err error) Kind {
	mu.RLock()
	defer mu.RUnlock()
	for _, k := range []Kind{Input, Backend} {
		for _, s := range sentinels[k] {
			if errors.Is(err, s) {
				return k
			}
		}
	}
	return Unknown
}
