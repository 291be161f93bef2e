package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifier tells systemd the state of a daemon (Type=notify or
// notify-reload units): ready, reloading, stopping, and alive for the
// watchdog. Outside systemd, with no NOTIFY_SOCKET, it does nothing.
type notifier struct{ log *slog.Logger }

func (n notifier) send(states ...string) {
	if _, err := daemon.SdNotify(false, strings.Join(states, "\n")); err != nil {
		n.log.Warn("cannot notify systemd", "state", states[0], "err", err)
	}
}

// ready says that start-up (or a reload) is complete; status is the
// one-line state systemctl status shows.
func (n notifier) ready(status string) {
	n.send(daemon.SdNotifyReady, "STATUS="+status)
}

// reloading says that a reload began; systemd waits for ready. The
// monotonic time lets systemd tell this reload from an earlier one.
func (n notifier) reloading() {
	n.send(daemon.SdNotifyReloading, daemon.SdNotifyMonotonicUsec())
}

func (n notifier) stopping() {
	n.send(daemon.SdNotifyStopping, "STATUS=stopping")
}

// watchdog pings systemd's watchdog (WatchdogSec=) at half its interval
// until ctx ends, each time the daemon's loop answers alive within a
// quarter of it. A process whose goroutines run but whose loop is wedged
// stops pinging, and systemd restarts it; a quarter keeps an answered
// ping within three quarters of the interval of the one before.
func (n notifier) watchdog(ctx context.Context, alive func(context.Context) error) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("systemd watchdog settings unreadable; not pinging it", "err", err)
		return
	}
	if interval <= 0 {
		return
	}
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	for {
		n.pingIfAlive(ctx, alive, interval/4)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (n notifier) pingIfAlive(ctx context.Context, alive func(context.Context) error, within time.Duration) {
	actx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	err := alive(actx)
	switch {
	case err == nil:
		n.send(daemon.SdNotifyWatchdog)
	case ctx.Err() == nil:
		n.log.Warn("daemon loop did not answer; not pinging the systemd watchdog, which restarts the daemon if this lasts", "within", within, "err", err)
	}
}
