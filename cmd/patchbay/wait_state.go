package main

import (
	"strconv"
	"strings"

	"github.com/patchbay/patchbay/internal/tracking"
)

// parseWaitTarget reads SERVICE@REVISION or SERVICE/REGION@REVISION.
func parseWaitTarget(s string) (tracking.Target, error) {
	name, rev, ok := strings.Cut(s, "@")
	n, err := strconv.ParseUint(rev, 10, 64)
	if !ok || err != nil || n == 0 || name == "" {
		return tracking.Target{}, usageErrorf("%q: want SERVICE@REVISION or SERVICE/REGION@REVISION, a revision above 0 (publish --json and datastore set --json print them)", s)
	}
	svc, region, _ := strings.Cut(name, "/")
	if svc == "" {
		return tracking.Target{}, usageErrorf("%q: the service is missing before /", s)
	}
	return tracking.Target{Service: svc, Region: region, Revision: n}, nil
}
