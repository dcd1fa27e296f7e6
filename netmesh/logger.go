package netmesh

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	ipfslog "github.com/ipfs/go-log"
)

// edgeLogger routes EdgeVPN's logger into slog. EdgeVPN's own logger writes
// JSON to stdout and exits the process on Fatal (which EdgeVPN calls when mDNS
// finds no multicast interface); here Fatal and Panic only log an error.
type edgeLogger struct {
	log *slog.Logger
	min slog.Level
}

var _ ipfslog.StandardLogger = (*edgeLogger)(nil)

func newEdgeLogger(l *slog.Logger, min slog.Level) *edgeLogger {
	return &edgeLogger{log: l.With("component", "edgevpn"), min: min}
}

func (l *edgeLogger) emit(level slog.Level, msg string) {
	if level < l.min {
		return
	}
	l.log.Log(context.Background(), level, strings.TrimSpace(msg))
}

func joinArgs(args []any) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, a)
	}
	return b.String()
}

// EdgeVPN's info messages are chatty start-up details; they go out as debug.

func (l *edgeLogger) Debug(args ...any)            { l.emit(slog.LevelDebug, joinArgs(args)) }
func (l *edgeLogger) Debugf(f string, args ...any) { l.emit(slog.LevelDebug, fmt.Sprintf(f, args...)) }
func (l *edgeLogger) Info(args ...any)             { l.emit(slog.LevelDebug, joinArgs(args)) }
func (l *edgeLogger) Infof(f string, args ...any)  { l.emit(slog.LevelDebug, fmt.Sprintf(f, args...)) }
func (l *edgeLogger) Warn(args ...any)             { l.emit(slog.LevelWarn, joinArgs(args)) }
func (l *edgeLogger) Warnf(f string, args ...any)  { l.emit(slog.LevelWarn, fmt.Sprintf(f, args...)) }
func (l *edgeLogger) Warning(args ...any)          { l.Warn(args...) }
func (l *edgeLogger) Warningf(f string, args ...any) {
	l.Warnf(f, args...)
}
func (l *edgeLogger) Error(args ...any)            { l.emit(slog.LevelError, joinArgs(args)) }
func (l *edgeLogger) Errorf(f string, args ...any) { l.emit(slog.LevelError, fmt.Sprintf(f, args...)) }
func (l *edgeLogger) Fatal(args ...any)            { l.emit(slog.LevelError, joinArgs(args)) }
func (l *edgeLogger) Fatalf(f string, args ...any) { l.emit(slog.LevelError, fmt.Sprintf(f, args...)) }
func (l *edgeLogger) Panic(args ...any)            { l.emit(slog.LevelError, joinArgs(args)) }
func (l *edgeLogger) Panicf(f string, args ...any) { l.emit(slog.LevelError, fmt.Sprintf(f, args...)) }
