package main

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// routeStdLog carries lines written to the standard library's global
// logger, which consul-template uses, into slog: "[WARN]" and "[ERR]"
// lines at their level, the rest ([TRACE], [DEBUG], [INFO]) at debug, so
// a render does not print consul-template's chatter.
func routeStdLog(to *slog.Logger) {
	log.SetFlags(0)
	log.SetOutput(stdLog{to})
}

// stdLog must not write through slog.Default(): until slog.SetDefault is
// called, that handler writes to the global logger, which would loop.
type stdLog struct{ to *slog.Logger }

func (l stdLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.HasPrefix(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.HasPrefix(line, "[ERR]"):
		level = slog.LevelError
	}
	l.to.Log(context.Background(), level, line, "from", "consul-template")
	return len(p), nil
}
