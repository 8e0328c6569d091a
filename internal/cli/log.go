package cli

import (
	"fmt"
	"io"
	"log/slog"
)

// LogFormats lists what NewLogger accepts, for flag help texts.
const LogFormats = "text or json"

// NewLogger returns a logger writing to w at level in format: "text"
// (key=value lines, for people) or "json" (one JSON object per line, for
// log collectors such as journald's or Loki's).
func NewLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("unknown log format %q (want %s)", format, LogFormats)
}
