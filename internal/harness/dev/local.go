package dev

import (
	"fmt"
	"os/exec"
)

// localLBLines is the local_lb of a simulated node's listener.yaml: with
// HAProxy installed, the node runs its local load balancer for real (it
// binds 127.0.0.1 only), so that app-www's API_URL, served via: local,
// keeps its value while api nodes come and go. The web nodes' HAProxies
// share the port: HAProxy binds with SO_REUSEPORT.
func localLBLines() string {
	p, err := exec.LookPath("haproxy")
	if err != nil {
		return "# local_lb: install haproxy to serve via: local requirements (app-www's API_URL)\n"
	}
	return fmt.Sprintf("local_lb: {program: %s}   # via: local requirements; config and socket in state_dir\n", p)
}
