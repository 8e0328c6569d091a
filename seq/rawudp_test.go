package seq

import (
	"bytes"
	"math"
	"testing"

	"github.com/stk-go/stk/internal/pcap"
)

// rawUDPPort is the data port of capture 10, the only one carrying raw UDP.
const rawUDPPort = 29312

func isRawUDP(nn string, p pcap.Packet) bool {
	return nn == "10" && p.Dst.Port() == rawUDPPort
}
func FuzzDecodeRawUDP(f *testing.F) {
	for _, nn := range []string{"10", "09", "05"} {
		for _, p := range captureUDP(f, nn) {
			f.Add(p.Payload, uint64(0), uint16(0), "UDP", uint64(0))
		}
	}
	f.Add([]byte{}, uint64(math.MaxUint64), uint16(TypeMgmt), "", uint64(0x135))

	f.Fuzz(func(t *testing.T, d []byte, id uint64, typ uint16, name string, userType uint64) {
		s := Sequence{Name: "old", Elements: []Element{{1, []byte("a")}, {2, nil}}, Generation: 9}
		cfg := RawUDPConfig{ID: id, Type: Type(typ), Name: name, UserType: userType}
		DecodeRawUDP(&s, d, cfg)
		wantType := Type(typ)
		if wantType == TypeInvalid {
			wantType = TypeData
		}
		if s.ID != id || s.Type != wantType || s.Name != name || s.Generation != 0 || len(s.Elements) != 1 || len(s.Meta) != 0 {
			t.Fatalf("DecodeRawUDP(%+v) = %v gen %d", cfg, &s, s.Generation)
		}
		e := s.Elements[0]
		if e.UserType != userType || len(e.Data) != len(d) || cap(e.Data) != len(d) || !within(e.Data, d) || !bytes.Equal(e.Data, d) {
			t.Fatalf("element %#x % x (cap %d), want the %d datagram bytes", e.UserType, e.Data, cap(e.Data), len(d))
		}
		payload, ok, err := RawUDPPayload(&s)
		if !ok || err != nil || !bytes.Equal(payload, d) {
			t.Fatalf("RawUDPPayload = % x, %v, %v", payload, ok, err)
		}
	})
}
