package registry

import (
	"fmt"
	"net"
	"regexp"
)

// hostName is a syntactically valid DNS name: dot-separated labels of
// letters, digits and inner hyphens, an optional final dot.
var hostName = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$`)

// AddressRule is the rule CheckAddress applies, for error messages.
const AddressRule = "an IP address or a host name of letters, digits, \"-\" and \".\" (no port, no spaces)"

// CheckAddress accepts an IP address or a syntactically valid host name.
// An instance's address lands in the configs of load balancers that other
// services' owners write, so nothing that could carry config syntax
// (";", "{", spaces, quotes) may enter the registry.
func CheckAddress(a string) error {
	if net.ParseIP(a) != nil || (len(a) <= 253 && hostName.MatchString(a)) {
		return nil
	}
	return fmt.Errorf("%w: address %q is not %s", ErrInvalid, a, AddressRule)
}
