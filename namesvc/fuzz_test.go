package namesvc

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/testutil/testpeer"
	"github.com/stk-go/stk/seq"
)

// FuzzServerHandle feeds arbitrary name-service traffic (TCP frames cut from
// the input) to a server core and to the client's answer parser. Neither may
// panic, and the server must still answer a well-formed client afterwards.
func FuzzServerHandle(f *testing.F) {
	reg := buildRegister(7, &Info{Name: "n", Group: "g", Linger: 3e9, FT: FTActive,
		Addresses: []Endpoint{{Protocol: "tcp"}}, Meta: []seq.Element{{UserType: 100, Data: []byte("hi\x00")}}})
	q := buildQuery(seq.TypeQuery, 8, "n", "g", true)
	sub := buildQuery(seq.TypeSubscribe, 9, "n", "", false)
	var seed []byte
	for _, s := range []*seq.Sequence{reg, q, sub, smartbeatSequence(time.Unix(1795313429, 0), netip.MustParseAddrPort("127.0.0.1:40000"))} {
		seed, _ = seq.AppendTCP(seed, s)
		f.Add(seed)
	}
	f.Add([]byte("garbage that is not a frame at all........"))
	quiet := testutil.Discard()

	f.Fuzz(func(t *testing.T, b []byte) {
		srv, err := NewServer(ServerConfig{Logger: quiet, ID: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		bad := testpeer.New(flow.TCP, "127.0.0.1:1000")
		var s seq.Sequence
		for len(b) > 0 {
			n, _, err := seq.DecodeTCP(&s, b, 1<<16)
			if err != nil || n == 0 {
				break
			}
			b = b[n:]
			srv.Handle(bad, &s)
			var info Info
			parseAnswer(&s, &info)
		}
		srv.Disconnect(bad)

		good := testpeer.New(flow.TCP, "127.0.0.1:2000")
		srv.Handle(good, buildRegister(1, &Info{Name: "ok", Addresses: []Endpoint{{Protocol: "tcp"}}}))
		srv.Handle(good, buildQuery(seq.TypeQuery, 2, "ok", "", false))
		got := good.Take()
		if len(got) != 2 || got[0].Type != seq.TypeRequest || got[1].Type != seq.TypeQuery {
			t.Fatalf("after the fuzz input, a good client got %v", got)
		}
	})
}
