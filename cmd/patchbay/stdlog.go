package main

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// routeStdLog carries lines written to the standard library's global
// logger into slog, at the level their prefix names: consul-template's
// "[WARN]" and "[ERR]" at warn and error, its "[TRACE]", "[DEBUG]" and
// "[INFO]" chatter at debug, so a render does not print it. A line without
// a level comes from some other library, which writes there only what it
// thinks someone should read: it is logged at info, so that no warning is
// lost behind a debug level.
func routeStdLog(to *slog.Logger) {
	log.SetFlags(0)
	log.SetOutput(stdLog{to})
}

// stdLog must not write through slog.Default(): unless slog.SetDefault
// was called, that handler writes to the global logger, which would loop.
type stdLog struct{ to *slog.Logger }

// stdLogLevels are the prefixes of consul-template's lines ("[WARN] ...")
// and of slog's own default handler ("WARN ..."), which writes through the
// global logger until slog.SetDefault is called.
var stdLogLevels = []struct {
	prefix string
	level  slog.Level
	from   string
}{
	{"[TRACE]", slog.LevelDebug, "consul-template"},
	{"[DEBUG]", slog.LevelDebug, "consul-template"},
	{"[INFO]", slog.LevelDebug, "consul-template"},
	{"[WARN]", slog.LevelWarn, "consul-template"},
	{"[ERR]", slog.LevelError, "consul-template"},
	{"[ERROR]", slog.LevelError, "consul-template"},
	{"DEBUG ", slog.LevelDebug, "slog"},
	{"INFO ", slog.LevelInfo, "slog"},
	{"WARN ", slog.LevelWarn, "slog"},
	{"ERROR ", slog.LevelError, "slog"},
}

func (l stdLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level, from := slog.LevelInfo, "log"
	for _, s := range stdLogLevels {
		if strings.HasPrefix(line, s.prefix) {
			level, from = s.level, s.from
			break
		}
	}
	l.to.Log(context.Background(), level, line, "from", from)
	return len(p), nil
}
