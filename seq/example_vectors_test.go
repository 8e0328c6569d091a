package seq

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The worked examples of docs/protocol.md §3.2 and §4.3 (captures 06 and 09).
const (
	vectorTCP06 = `01 00 01 00 03 00 00 00  57 95 54 6a 00 00 00 00  01 00 00 00 00 00 00 00
		11 00 70 75 62 6c 69 73 68 20 73 65 71 75 65 6e 63 65 00
		00 00 01 00 0a 00 00 00  35 01 00 00 00 00 00 00
		64 65 66 61 75 6c 74 20 de ad`
	vectorUDP09 = `48 5a 52 73 00 00 00 00  01 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00
		00 00 00 00 01 00 00 00  67 45 8b 6b 00 00 00 00
		b8 00 00 00 00 00 00 00  01 00 00 00 00 00 00 00
		11 00 70 75 62 6c 69 73 68 20 73 65 71 75 65 6e 63 65 00
		00 00 00 00 0a 00 00 00  00 00 00 00 00 00 00 00  35 01 00 00 00 00 00 00
		64 65 66 61 75 6c 74 20 de ad`
)

func TestWorkedExampleTCP(t *testing.T) {
	frame := unhex(t, vectorTCP06)
	var s Sequence
	n, need, err := DecodeTCP(&s, frame, 0)
	if err != nil || n != len(frame) || need != 0 {
		t.Fatalf("DecodeTCP = %d, %d, %v; want %d, 0, nil", n, need, err, len(frame))
	}
	if s.ID != 0x6a549557 || s.Type != TypeData || s.Name != "publish sequence" || len(s.Elements) != 1 ||
		s.Elements[0].UserType != UTExampleData || string(s.Elements[0].Data) != "default \xde\xad" {
		t.Fatalf("decoded %v %v", &s, s.Elements)
	}
	out, err := AppendTCP(nil, &s)
	if err != nil || !bytes.Equal(out, frame) {
		t.Fatalf("AppendTCP = %x, %v; want %x", out, err, frame)
	}
	for cut := range len(frame) {
		n, need, err := DecodeTCP(&s, frame[:cut], 0)
		if n != 0 || err != nil || need <= cut || need > len(frame) {
			t.Fatalf("cut %d: DecodeTCP = %d, %d, %v", cut, n, need, err)
		}
	}
}

func TestWorkedExampleUDP(t *testing.T) {
	dgram := unhex(t, vectorUDP09)
	var s Sequence
	if err := DecodeUDP(&s, dgram); err != nil {
		t.Fatal(err)
	}
	if s.ID != 0x73525a48 || s.Generation != 1 || s.Type != TypeData || s.Name != "publish sequence" ||
		len(s.Elements) != 1 || string(s.Elements[0].Data) != "default \xde\xad" {
		t.Fatalf("decoded %v", &s)
	}
	var got [][]byte
	_, err := AppendUDP(nil, &s, 0x6b8b4567, func(d []byte) error {
		got = append(got, bytes.Clone(d))
		return nil
	})
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], dgram) {
		t.Fatalf("AppendUDP = %x, %v; want %x", got, err, dgram)
	}
}
