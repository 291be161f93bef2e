package model

import (
	"fmt"
	"strings"

	"github.com/patchbay/patchbay/binding"
)

// keepsLastGood ends the reason of a service that renders nothing.
const keepsLastGood = "its files keep their last good version"

// unresolvedText says which requirements are unresolved and why.
func unresolvedText(us []binding.Unresolved) string {
	parts := make([]string, len(us))
	for i, u := range us {
		parts[i] = fmt.Sprintf("%s unresolved (%s)", u.Var, u.Reason)
	}
	return strings.Join(parts, "; ")
}

// skippedReason is the reason of a service whose binding is not ready:
// nothing is rendered.
func skippedReason(us []binding.Unresolved) string {
	return unresolvedText(us) + "; " + keepsLastGood
}

// policyReason is the reason of a service whose binding is not ready but
// whose files route to providers policy no longer allows: those files are
// rendered without them, the others kept.
func policyReason(us []binding.Unresolved, templates []string) string {
	return fmt.Sprintf("%s; %s rendered without the providers policy no longer allows", unresolvedText(us), strings.Join(templates, ", "))
}
