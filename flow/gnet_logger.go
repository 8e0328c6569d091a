package flow

import (
	"fmt"
	"log/slog"
	"sync/atomic"
)

// gnetLogger routes gnet's log lines into slog, so that a daemon has one log.
// While its flow is closing, gnet's errors are expected (the listener is shut
// down under the acceptor) and logged at debug level.
type gnetLogger struct {
	l       *slog.Logger
	closing *atomic.Bool
}

func (g gnetLogger) Debugf(format string, args ...any) { g.l.Debug(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Infof(format string, args ...any)  { g.l.Debug(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.error(format, args...) }
func (g gnetLogger) Errorf(format string, args ...any) { g.error(format, args...) }
func (g gnetLogger) Fatalf(format string, args ...any) { g.error(format, args...) }

func (g gnetLogger) error(format string, args ...any) {
	if g.closing.Load() {
		g.l.Debug(fmt.Sprintf(format, args...))
		return
	}
	g.l.Error(fmt.Sprintf(format, args...))
}
