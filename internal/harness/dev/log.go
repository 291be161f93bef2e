package dev

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// openLog returns a logger writing to path, and a channel that also gets
// a one-line summary of each record at info level or above, for the
// status table's recent events. Summaries are dropped while the channel
// is full: the log file has everything.
func openLog(path string) (*slog.Logger, <-chan string, func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("dev: log: %w", err)
	}
	events := make(chan string, 256)
	h := &eventHandler{Handler: slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}), events: events}
	return slog.New(h), events, func() { _ = f.Close() }, nil
}

// eventHandler forwards records to a handler and summarises them.
type eventHandler struct {
	slog.Handler
	events chan<- string
	prefix string // the node or part, from With
}

// summaryKeys are the attributes a summary keeps, in this order.
var summaryKeys = []string{"service", "template", "path", "command", "instance", "revision", "result", "took", "err", "reason"}

func (h *eventHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Time.Format("15:04:05 "))
	if h.prefix != "" {
		b.WriteString(h.prefix + " ")
	}
	b.WriteString(r.Message)
	attrs := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		return true
	})
	for _, k := range summaryKeys {
		if v, ok := attrs[k]; ok {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	select {
	case h.events <- b.String():
	default:
	}
	return h.Handler.Handle(ctx, r)
}

func (h *eventHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	prefix := h.prefix
	for _, a := range attrs {
		if a.Key == "node" || a.Key == "part" {
			prefix = a.Value.String()
		}
	}
	return &eventHandler{Handler: h.Handler.WithAttrs(attrs), events: h.events, prefix: prefix}
}

func (h *eventHandler) WithGroup(name string) slog.Handler {
	return &eventHandler{Handler: h.Handler.WithGroup(name), events: h.events, prefix: h.prefix}
}
