package step

import (
	"encoding/json"
	"testing"

	"github.com/stk-go/stk/seq"
)

func BenchmarkEncodeDecodeSequence(b *testing.B) {
	s, _ := Parse([]byte(contract))
	var q seq.Sequence
	b.ReportAllocs()
	for b.Loop() {
		Encode(&q, s)
		if _, err := Decode(&q); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSON(b *testing.B) {
	s, _ := Parse([]byte(contract))
	b.ReportAllocs()
	for b.Loop() {
		out, _ := json.Marshal(s)
		if _, err := Parse(out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPatternMatch(b *testing.B) {
	p := MustPattern("system.cpu.*,*.high,process.*")
	for b.Loop() {
		p.Match("system.memory.high")
	}
}
