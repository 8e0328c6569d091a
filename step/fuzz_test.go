package step

import (
	"encoding/json"
	"testing"

	"github.com/stk-go/stk/seq"
)

// FuzzParse: Parse never panics, and what it accepts re-encodes to JSON
// that parses to the same STEP.
func FuzzParse(f *testing.F) {
	f.Add([]byte(contract))
	f.Add([]byte(`{"id":"x","time":{"start":1},"event":{"type":"a"},"space":{"hostname":"h","k":[1,{"a":null}]},"psychology":{"valence":0,"intensity":0}}`))
	f.Add([]byte(`{"space":{"ip":null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("accepted STEP does not encode: %v", err)
		}
		s2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-encoded STEP %s refused: %v", out, err)
		}
		out2, _ := json.Marshal(s2)
		if string(out) != string(out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
	})
}

// FuzzDecodeSequence: the sequence decoder never panics on any TCP frame,
// and what it accepts survives Encode/Decode unchanged.
func FuzzDecodeSequence(f *testing.F) {
	s, _ := Parse([]byte(contract))
	var q seq.Sequence
	Encode(&q, s)
	wire, _ := seq.AppendTCP(nil, &q)
	f.Add(wire)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r seq.Sequence
		if _, _, err := seq.DecodeTCP(&r, b, 1<<20); err != nil {
			return
		}
		r.ID = IDStep
		st, err := Decode(&r)
		if err != nil {
			return
		}
		var again seq.Sequence
		if err := Encode(&again, st); err != nil {
			t.Fatalf("decoded STEP does not encode: %v", err)
		}
		st2, err := Decode(&again)
		if err != nil {
			t.Fatalf("re-encoded STEP refused: %v", err)
		}
		a, _ := json.Marshal(st)
		b2, _ := json.Marshal(st2)
		if string(a) != string(b2) {
			t.Fatalf("not stable:\n%s\n%s", a, b2)
		}
	})
}
