// Package alive is a loop's liveness probe, which the systemd watchdog
// asks before it pings: a process whose goroutines still run but whose
// loop does not is not alive. The loop takes probes wherever it waits, so
// an outage it is riding out is not taken for a wedge.
package alive

import (
	"context"
	"fmt"
)

// Probe is asked by a watchdog and answered by one loop.
type Probe struct {
	c chan struct{} // unbuffered: a probe is taken only by the loop's select
}

// New returns a probe for one loop.
func New() *Probe { return &Probe{c: make(chan struct{})} }

// C is what the loop selects on wherever it waits.
func (p *Probe) C() <-chan struct{} { return p.c }

// Ask returns nil once the loop took the probe, or an error naming who
// when ctx ended first: the loop is not running, or it is stuck.
func (p *Probe) Ask(ctx context.Context, who string) error {
	select {
	case p.c <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s did not answer: %w", who, ctx.Err())
	}
}
