package step

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/seq"
)

// contract is the STEP, the public JSON shape.
const contract = `{"id": "0f8e2c1a-5b7d-4e39-9c61-2d4a8b3f7e10",
 "time": {"start": 1763776800000},
 "event": {"type": "system.memory.high", "description": "memory use at 91%"},
 "space": {"hostname": "db-2", "ip": "10.1.4.22", "memory_percent": 91},
 "psychology": {"valence": -0.6, "intensity": 0.8}}`

func TestContractRoundTrip(t *testing.T) {
	s, err := Parse([]byte(contract))
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "0f8e2c1a-5b7d-4e39-9c61-2d4a8b3f7e10" || s.Time.Start != 1763776800000 ||
		s.Event.Type != "system.memory.high" || s.Event.Description != "memory use at 91%" ||
		s.Space.Hostname != "db-2" || s.Space.IP != "10.1.4.22" ||
		s.Psychology.Valence != -0.6 || s.Psychology.Intensity != 0.8 {
		t.Fatalf("parsed %+v", s)
	}
	if v, ok := s.Float("memory_percent"); !ok || v != 91 {
		t.Fatalf("memory_percent = %v %v", v, ok)
	}
	got, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	json.Compact(&compact, []byte(contract))
	if string(got) != compact.String() {
		t.Fatalf("re-encoded\n got %s\nwant %s", got, compact.String())
	}
}

func TestTimeEndDuration(t *testing.T) {
	s := New("deploy.done", "deployed", "web-1", time.UnixMilli(1000))
	s.Time.End, s.Time.Duration = 3000, 2000
	b, _ := json.Marshal(s)
	if !strings.Contains(string(b), `"time":{"start":1000,"end":3000,"duration":2000}`) {
		t.Fatalf("time encoded as %s", b)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Time != s.Time {
		t.Fatalf("time %+v, want %+v", back.Time, s.Time)
	}
}

func TestParseRejects(t *testing.T) {
	base := func() map[string]any {
		var m map[string]any
		json.Unmarshal([]byte(contract), &m)
		return m
	}
	cases := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"no id", func(m map[string]any) { delete(m, "id") }, "id is missing"},
		{"no start", func(m map[string]any) { m["time"] = map[string]any{} }, "time.start"},
		{"end before start", func(m map[string]any) { m["time"] = map[string]any{"start": 10, "end": 5} }, "time.end"},
		{"no type", func(m map[string]any) { m["event"] = map[string]any{"description": "x"} }, "event.type is missing"},
		{"bad type", func(m map[string]any) { m["event"] = map[string]any{"type": "a..b"} }, "empty word"},
		{"type chars", func(m map[string]any) { m["event"] = map[string]any{"type": "a b"} }, "may only hold"},
		{"valence", func(m map[string]any) { m["psychology"] = map[string]any{"valence": 2} }, "valence"},
		{"intensity", func(m map[string]any) { m["psychology"] = map[string]any{"intensity": -0.1} }, "intensity"},
		{"unknown key", func(m map[string]any) { m["evnt"] = 1 }, "unknown field"},
		{"hostname type", func(m map[string]any) { m["space"] = map[string]any{"hostname": 3} }, "space.hostname must be a string"},
		{"space not object", func(m map[string]any) { m["space"] = []int{1} }, "space"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := base()
			c.edit(m)
			b, _ := json.Marshal(m)
			_, err := Parse(b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse(%s) = %v, want an error with %q", b, err, c.want)
			}
		})
	}
	for _, bad := range []string{``, `{`, `[]`, `null`, `{"id":"x"} {"id":"y"}`, strings.Repeat(" ", MaxJSONSize+1)} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%.20q) accepted", bad)
		}
	}
}

func TestSequenceRoundTrip(t *testing.T) {
	s, _ := Parse([]byte(contract))
	s.Time.End, s.Time.Duration = 1763776801000, 1000
	s.Set("tags", []any{"a", "b"})
	s.Set("nested", map[string]any{"x": 1.5})
	var q seq.Sequence
	if err := Encode(&q, s); err != nil {
		t.Fatal(err)
	}
	if q.ID != IDStep || q.Name != Name || q.Type != seq.TypeData {
		t.Fatalf("sequence header %#x %q %v", q.ID, q.Name, q.Type)
	}
	// Through the real TCP codec, as a subscriber sees it.
	wire, err := seq.AppendTCP(nil, &q)
	if err != nil {
		t.Fatal(err)
	}
	var r seq.Sequence
	if _, _, err := seq.DecodeTCP(&r, wire, 0); err != nil {
		t.Fatal(err)
	}
	back, err := Decode(&r)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(s)
	b, _ := json.Marshal(back)
	if string(a) != string(b) {
		t.Fatalf("sequence round trip\n got %s\nwant %s", b, a)
	}
	// The decoded STEP must not alias the receive buffer.
	for i := range wire {
		wire[i] = 0
	}
	for i := range r.Elements {
		for j := range r.Elements[i].Data {
			r.Elements[i].Data[j] = 'X'
		}
	}
	c, _ := json.Marshal(back)
	if string(c) != string(a) {
		t.Fatal("decoded STEP aliases the sequence's buffers")
	}
}

func TestDecodeRejects(t *testing.T) {
	good := func() *seq.Sequence {
		var q seq.Sequence
		Encode(&q, New("a.b", "", "h", time.UnixMilli(5)))
		return &q
	}
	q := good()
	q.ID = 7
	if _, err := Decode(q); err == nil {
		t.Error("wrong sequence id accepted")
	}
	q = good()
	q.AddCString(UTID, "again")
	if _, err := Decode(q); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("repeated id: %v", err)
	}
	q = good()
	for i, e := range q.Elements {
		if e.UserType == UTStart {
			q.Elements[i].Data = []byte{1, 2, 3}
		}
	}
	if _, err := Decode(q); err == nil {
		t.Error("3-byte start accepted")
	}
	q = good()
	q.Elements = q.Elements[1:] // no id
	if _, err := Decode(q); err == nil {
		t.Error("STEP without id accepted")
	}
	q = good()
	q.Add(UTFields, []byte("{not json"))
	if _, err := Decode(q); err == nil {
		t.Error("bad fields JSON accepted")
	}
	q = good()
	for i, e := range q.Elements {
		if e.UserType == UTValence {
			q.Elements[i].Data = make([]byte, 8)
			bits := math.Float64bits(math.NaN())
			for j := range 8 {
				q.Elements[i].Data[j] = byte(bits >> (8 * j))
			}
		}
	}
	if _, err := Decode(q); err == nil {
		t.Error("NaN valence accepted")
	}
	q = good()
	q.AddCString(0x99, "unknown elements are ignored")
	if _, err := Decode(q); err != nil {
		t.Errorf("unknown element: %v", err)
	}
}

func TestPattern(t *testing.T) {
	cases := []struct {
		pattern, typ string
		want         bool
	}{
		{"", "anything.at.all", true},
		{"system.cpu", "system.cpu", true},
		{"system.cpu", "system.cpu.high", false},
		{"system.cpu.*", "system.cpu.high", true},
		{"system.cpu.*", "system.cpu", false},
		{"system.*", "system.disk.high", true},
		{"*.high", "system.memory.high", true},
		{"*.high", "system.memory.higher", false},
		{"*", "x", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"system.cpu.*, *.critical", "disk.critical", true},
		{"process.*,file.*", "user.login", false},
	}
	for _, c := range cases {
		p, err := ParsePattern(c.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", c.pattern, err)
		}
		if got := p.Match(c.typ); got != c.want {
			t.Errorf("%q.Match(%q) = %v, want %v", c.pattern, c.typ, got, c.want)
		}
	}
	for _, bad := range []string{"a,,b", "sys tem", "a/b", strings.Repeat("a", MaxTypeLen+1)} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) accepted", bad)
		}
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if len(id) != 36 || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

func TestCloneIsDeep(t *testing.T) {
	s, _ := Parse([]byte(contract))
	s.Set("nested", map[string]any{"x": 1.0})
	c := s.Clone()
	c.Space.Fields["nested"].(map[string]any)["x"] = 2.0
	c.Set("memory_percent", 1.0)
	if v, _ := s.Float("memory_percent"); v != 91 {
		t.Fatal("Clone shares fields")
	}
	if s.Space.Fields["nested"].(map[string]any)["x"] != 1.0 {
		t.Fatal("Clone shares nested fields")
	}
}

func TestLevel(t *testing.T) {
	s := New("system.cpu.high", "", "h", time.Now())
	if s.Level() != LevelInfo {
		t.Fatal(s.Level())
	}
	s.Set("level", LevelCritical)
	if s.Level() != LevelCritical {
		t.Fatal(s.Level())
	}
}
