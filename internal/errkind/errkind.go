// Package errkind gives every sentinel error of patchbay a kind: the user's
// input is wrong, or a backend (Consul, NATS, HAProxy, the host) failed.
// The kind is stated where the sentinel is declared, so that a new one is
// classified by whoever writes it; cmd/patchbay turns kinds into exit codes.
//
// The kind travels with the error's type (a Kind method), not in a table:
// there is no state to share, and an error type of its own (a list of
// problems, a usage error) states its kind the same way.
package errkind

// Kind says whose move it is after an error.
type Kind int

const (
	// Unknown: no error of a kind is in the chain.
	Unknown Kind = iota
	// Input: the command line, a manifest, a template or a config file is
	// wrong, or the cluster's state makes the request impossible; retrying
	// the same thing fails the same way.
	Input
	// Backend: Consul, NATS, HAProxy or a command on the host failed or did
	// not answer; the same request may succeed later.
	Backend
)

// kinded is a sentinel of New. A pointer, so that two sentinels with the
// same text stay two sentinels for errors.Is.
type kinded struct {
	kind Kind
	msg  string
}

func (e *kinded) Error() string { return e.msg }
func (e *kinded) Kind() Kind    { return e.kind }

// New returns a sentinel error of kind k with text msg.
func New(k Kind, msg string) error { return &kinded{kind: k, msg: msg} }

// Of returns the kind of err: Input when an error of that kind is anywhere
// in its tree (wrapped, or joined with errors.Join or several %w), else
// Backend when one of that kind is, else Unknown. The whole tree is walked,
// not only the first error with a kind as errors.As would stop at, because
// Input wins: an error that is the user's to fix stays so however a backend
// answered on the way.
func Of(err error) Kind {
	k := Unknown
	if e, ok := err.(interface{ Kind() Kind }); ok {
		k = e.Kind()
	}
	if k == Input {
		return Input
	}
	for _, next := range unwrap(err) {
		switch Of(next) {
		case Input:
			return Input
		case Backend:
			k = Backend
		}
	}
	return k
}

// unwrap returns what err wraps, the two forms of errors.Unwrap alike.
func unwrap(err error) []error {
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		return e.Unwrap()
	case interface{ Unwrap() error }:
		return []error{e.Unwrap()}
	}
	return nil
}
