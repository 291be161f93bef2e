package listener

import (
	"context"
	"time"
)

// statusForgetter is a registry that can delete a node's status record.
type statusForgetter interface {
	DeleteStatus(ctx context.Context, node string) error
}

// forgetStatus deletes the node's status record once its instances are
// deregistered: a node that stopped cleanly is no node `patchbay status`
// should go on listing as ok. A node that dies keeps its record, which
// status shows as stale once the node no longer answers over NATS.
func (l *Listener) forgetStatus() {
	f, ok := l.reg.(statusForgetter)
	if !ok {
		return
	}
	node := l.cfg.Load().Node
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.DeleteStatus(ctx, node); err != nil {
		l.log.Warn("deleting this node's status record failed; patchbay status shows it as stale", "err", err)
		return
	}
	l.log.Info("status record deleted")
}
