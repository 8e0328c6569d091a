package step

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Step is one STEP event. Its JSON form is the package's public contract
// (see the package documentation).
type Step struct {
	ID         string     `json:"id"`
	Time       Time       `json:"time"`
	Event      Event      `json:"event"`
	Space      Space      `json:"space"`
	Psychology Psychology `json:"psychology"`
}

// Time says when the event happened, in Unix milliseconds. End and
// Duration are optional (zero when absent).
type Time struct {
	Start    int64 `json:"start"`
	End      int64 `json:"end,omitempty"`
	Duration int64 `json:"duration,omitempty"`
}

// Event says what happened: a dotted type such as "system.cpu" or
// "system.memory.high", and a sentence for people.
type Event struct {
	Type        string `json:"type"`
	Description string `json:"description"`
}

// Psychology scores an event's mood: Valence from -1 (bad) to +1 (good),
// Intensity from 0 (calm) to 1 (urgent).
type Psychology struct {
	Valence   float64 `json:"valence"`
	Intensity float64 `json:"intensity"`
}

// Space says where the event happened and carries its own fields. In JSON
// the fields sit beside hostname and ip in one object.
type Space struct {
	Hostname string
	IP       string
	// Fields are the event's own values: numbers (float64 after decoding),
	// strings, booleans, or nested JSON values. Keys "hostname" and "ip" are
	// reserved for the fields above.
	Fields map[string]any
}

// Levels an alert carries in its space under "level".
const (
	LevelWarning   = "warning"
	LevelCritical  = "critical"
	LevelRecovered = "recovered"
	LevelInfo      = "info" // what Level reports for events without a level
)

// New returns a Step of the given type that started at t on hostname, with
// a fresh id and neutral psychology.
func New(eventType, description, hostname string, t time.Time) *Step {
	return &Step{
		ID:    NewID(),
		Time:  Time{Start: t.UnixMilli()},
		Event: Event{Type: eventType, Description: description},
		Space: Space{Hostname: hostname},
	}
}

// Start returns Time.Start as a time.Time.
func (s *Step) Start() time.Time { return time.UnixMilli(s.Time.Start) }

// Set stores a field in the space, creating the map when needed.
func (s *Step) Set(key string, v any) {
	if s.Space.Fields == nil {
		s.Space.Fields = make(map[string]any)
	}
	s.Space.Fields[key] = v
}

// Float returns a numeric space field. Integers of any Go type count.
func (s *Step) Float(key string) (float64, bool) {
	switch v := s.Space.Fields[key].(type) {
	case float64:
		return v, true
	case float32:
		return float64(v), true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	case int32:
		return float64(v), true
	case uint32:
		return float64(v), true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	}
	return 0, false
}

// String returns a string space field.
func (s *Step) String(key string) (string, bool) {
	v, ok := s.Space.Fields[key].(string)
	return v, ok
}

// Level returns the alert level in the space ("warning", "critical",
// "recovered"), or LevelInfo when the event carries none.
func (s *Step) Level() string {
	if l, ok := s.String("level"); ok && l != "" {
		return l
	}
	return LevelInfo
}

// Clone returns a deep copy of s, so it can be kept while s is changed.
func (s *Step) Clone() *Step {
	c := *s
	c.Space.Fields = cloneFields(s.Space.Fields)
	return &c
}

func cloneFields(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneFields(x)
	case []any:
		c := make([]any, len(x))
		for i := range x {
			c[i] = cloneValue(x[i])
		}
		return c
	}
	return v
}

// MarshalJSON writes hostname and ip first, then the fields in key order.
func (sp Space) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	add := func(k string, v any) error {
		enc, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("space field %q: %w", k, err)
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		key, _ := json.Marshal(k)
		b.Write(key)
		b.WriteByte(':')
		b.Write(enc)
		return nil
	}
	if err := add("hostname", sp.Hostname); err != nil {
		return nil, err
	}
	if sp.IP != "" {
		if err := add("ip", sp.IP); err != nil {
			return nil, err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(sp.Fields)) {
		if k == "hostname" || k == "ip" {
			continue
		}
		if err := add(k, sp.Fields[k]); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads hostname and ip into their fields and keeps the rest
// in Fields.
func (sp *Space) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if m == nil {
		return errors.New("space must be a JSON object")
	}
	*sp = Space{}
	for _, k := range []string{"hostname", "ip"} {
		v, ok := m[k]
		if !ok || v == nil {
			continue
		}
		s, isStr := v.(string)
		if !isStr {
			return fmt.Errorf("space.%s must be a string", k)
		}
		if k == "hostname" {
			sp.Hostname = s
		} else {
			sp.IP = s
		}
		delete(m, k)
	}
	if len(m) > 0 {
		sp.Fields = m
	}
	return nil
}

// Limits Validate enforces, so that one event cannot take a bus's memory.
const (
	MaxIDLen          = 128
	MaxTypeLen        = 128
	MaxDescriptionLen = 4096
	MaxHostnameLen    = 255
	MaxFields         = 256
	MaxJSONSize       = 64 << 10 // a whole encoded STEP
)

// Validate reports the first thing wrong with s, in words fit for an HTTP
// 400 reply.
func (s *Step) Validate() error {
	switch {
	case s.ID == "":
		return errors.New("id is missing")
	case len(s.ID) > MaxIDLen:
		return fmt.Errorf("id is longer than %d bytes", MaxIDLen)
	case !printable(s.ID):
		return errors.New("id holds control characters")
	case s.Time.Start <= 0:
		return errors.New("time.start is missing (Unix milliseconds)")
	case s.Time.End != 0 && s.Time.End < s.Time.Start:
		return errors.New("time.end is before time.start")
	case s.Time.Duration < 0:
		return errors.New("time.duration is negative")
	}
	if err := ValidType(s.Event.Type); err != nil {
		return err
	}
	switch {
	case len(s.Event.Description) > MaxDescriptionLen:
		return fmt.Errorf("event.description is longer than %d bytes", MaxDescriptionLen)
	case len(s.Space.Hostname) > MaxHostnameLen:
		return fmt.Errorf("space.hostname is longer than %d bytes", MaxHostnameLen)
	case !printable(s.Space.Hostname) || !printable(s.Space.IP):
		return errors.New("space.hostname or space.ip holds control characters")
	case len(s.Space.IP) > MaxHostnameLen:
		return fmt.Errorf("space.ip is longer than %d bytes", MaxHostnameLen)
	case len(s.Space.Fields) > MaxFields:
		return fmt.Errorf("space has more than %d fields", MaxFields)
	case math.IsNaN(s.Psychology.Valence) || s.Psychology.Valence < -1 || s.Psychology.Valence > 1:
		return errors.New("psychology.valence must be between -1 and 1")
	case math.IsNaN(s.Psychology.Intensity) || s.Psychology.Intensity < 0 || s.Psychology.Intensity > 1:
		return errors.New("psychology.intensity must be between 0 and 1")
	}
	return nil
}

// ValidType checks an event type: dotted words of letters, digits, '_' and
// '-', at most MaxTypeLen bytes.
func ValidType(t string) error {
	if t == "" {
		return errors.New("event.type is missing")
	}
	if len(t) > MaxTypeLen {
		return fmt.Errorf("event.type is longer than %d bytes", MaxTypeLen)
	}
	prevDot := true
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '.':
			if prevDot {
				return fmt.Errorf("event.type %q has an empty word", t)
			}
			prevDot = true
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return fmt.Errorf("event.type %q may only hold letters, digits, '_', '-' and dots", t)
		}
		prevDot = false
	}
	if prevDot {
		return fmt.Errorf("event.type %q ends with a dot", t)
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// Parse decodes one STEP from JSON and validates it. Unknown top-level keys
// are refused, so that a misspelt "evnt" is an error, not an empty event.
func Parse(b []byte) (*Step, error) {
	if len(b) > MaxJSONSize {
		return nil, fmt.Errorf("STEP is %d bytes, more than %d", len(b), MaxJSONSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Step
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("not a STEP: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a STEP: more than one JSON value")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}
