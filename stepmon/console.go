package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/stk-go/stk/hostmon"
	"github.com/stk-go/stk/step"
)

// console prints STEPs, one line each: JSON, or a line for people.
type console struct {
	w          io.Writer
	json       bool
	color      bool
	eventsOnly bool
	log        *slog.Logger
	buf        bytes.Buffer // reused: one write per line
	enc        *json.Encoder
	failed     bool // a write failed (logged once)
}

func newConsole(w io.Writer, jsonLines, color, eventsOnly bool, log *slog.Logger) *console {
	c := &console{w: w, json: jsonLines, color: color, eventsOnly: eventsOnly, log: log}
	c.enc = json.NewEncoder(&c.buf)
	c.enc.SetEscapeHTML(false)
	return c
}

// isTerminal reports whether f is a terminal that may get colours: a
// character device, unless NO_COLOR is set or TERM is "dumb".
func isTerminal(f *os.File) bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// ANSI colours of the levels.
var levelColors = map[string]string{
	step.LevelWarning:   "\x1b[33m",   // yellow
	step.LevelCritical:  "\x1b[1;31m", // bold red
	step.LevelRecovered: "\x1b[32m",   // green
}

// print is a Monitor sink.
func (c *console) print(s *step.Step) {
	metric := hostmon.IsMetric(s)
	if c.eventsOnly && metric {
		return
	}
	c.buf.Reset()
	if c.json {
		if err := c.enc.Encode(s); err != nil { // Encode ends the line
			c.log.Warn("a STEP cannot be written as JSON", "type", s.Event.Type, "err", err)
			return
		}
	} else {
		c.human(s, metric)
	}
	if _, err := c.w.Write(c.buf.Bytes()); err != nil && !c.failed {
		c.failed = true
		c.log.Warn("console output failed; STEPs are still published", "err", err)
	}
}

// human writes "time LEVEL type host description".
func (c *console) human(s *step.Step, metric bool) {
	b := &c.buf
	b.Write(time.UnixMilli(s.Time.Start).AppendFormat(b.AvailableBuffer(), "2006-01-02 15:04:05.000"))
	b.WriteByte(' ')
	level := s.Level()
	name := strings.ToUpper(level)
	if metric && level == step.LevelInfo {
		name = "METRIC"
	}
	col := levelColors[level]
	if c.color && col != "" {
		b.WriteString(col)
	}
	b.WriteString(name)
	if c.color && col != "" {
		b.WriteString("\x1b[0m")
	}
	pad(b, len(name), 10)
	b.WriteString(s.Event.Type)
	pad(b, len(s.Event.Type), 20)
	b.WriteString(s.Space.Hostname)
	b.WriteByte(' ')
	b.WriteString(oneLine(s.Event.Description))
	b.WriteByte('\n')
}

func pad(b *bytes.Buffer, n, width int) {
	for ; n < width; n++ {
		b.WriteByte(' ')
	}
	b.WriteByte(' ')
}

// oneLine keeps a description on its line and out of the terminal's
// control: control characters (a file name may hold any) become spaces.
func oneLine(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }
