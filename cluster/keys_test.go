package cluster

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// benchChange is a registration as the benchmarks' clients make them:
// a name, a linger, a group and one TCP address.
func benchChange() namesvc.LocalChange {
	r := &namesvc.Registration{Name: "thr-0-A-12345", Elements: []seq.Element{
		{UserType: 0x100, Data: []byte("thr-0-A-12345\x00")},
		{UserType: 0x101, Data: []byte{0, 0, 0, 0}},
		{UserType: 0x102, Data: []byte("\x00")},
		{UserType: 0x103, Data: []byte{127, 0, 0, 1, 0x1c, 0x20}},
		{UserType: 0x104, Data: []byte("tcp\x00")},
	}, Registrant: netip.MustParseAddrPort("127.0.0.1:40000"), Transport: flow.TCP, Registered: time.Now()}
	return namesvc.LocalChange{Serial: 12345, Name: r.Name, Reg: r}
}

func BenchmarkEncodeReg(b *testing.B) {
	c := benchChange()
	now := time.Now()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendReg(buf[:0], c, now)
	}
	b.ReportMetric(float64(len(buf)), "bytes/value")
}

func BenchmarkDecodeReg(b *testing.B) {
	c := benchChange()
	v := appendReg(nil, c, time.Now())
	k := namesvc.RemoteKey{Node: "A", Name: c.Name, Serial: c.Serial}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeReg(k, v); err != nil {
			b.Fatal(err)
		}
	}
}

// A registration value decodes to the registration written: every field,
// with and without an expiry and a registrant; every truncation of it is
// an error, not a panic or a wrong registration.
func TestRegValueRoundTrip(t *testing.T) {
	full := benchChange()
	full.Reg.Linger = 1500 * time.Millisecond
	full.Expires = time.Unix(0, 1_700_000_000_123_456_789)
	bare := benchChange()
	bare.Reg = &namesvc.Registration{Name: bare.Name, Transport: flow.UDP, Registered: time.Unix(0, 42)}
	v6 := benchChange()
	v6.Reg.Registrant = netip.MustParseAddrPort("[fe80::1%eth0]:7000")
	w := time.Unix(0, 1_700_000_001_000_000_000)
	for _, c := range []namesvc.LocalChange{full, bare, v6} {
		k := namesvc.RemoteKey{Node: "A", Name: c.Name, Serial: c.Serial}
		b := appendReg(nil, c, w)
		got, written, err := decodeReg(k, b)
		if err != nil {
			t.Fatalf("decode %x: %v", b, err)
		}
		r, want := got.Reg, c.Reg
		if !written.Equal(w) || !got.Expires.Equal(c.Expires) || r.Name != want.Name || r.Linger != want.Linger ||
			!r.Registered.Equal(want.Registered) || r.Transport != want.Transport || r.Registrant != want.Registrant ||
			len(r.Elements) != len(want.Elements) {
			t.Fatalf("decoded %+v (written %v, expires %v), want %+v (written %v, expires %v)", r, written, got.Expires, want, w, c.Expires)
		}
		for i, e := range r.Elements {
			if e.UserType != want.Elements[i].UserType || string(e.Data) != string(want.Elements[i].Data) {
				t.Fatalf("element %d: %+v, want %+v", i, e, want.Elements[i])
			}
		}
		for n := range len(b) {
			if _, _, err := decodeReg(k, b[:n]); err == nil {
				t.Fatalf("the first %d of %d bytes decoded without an error", n, len(b))
			}
		}
		if _, _, err := decodeReg(k, append(b, 0)); err == nil {
			t.Fatalf("a value with a byte left over decoded without an error")
		}
	}
}

// Values written by the first builds (JSON) still decode.
func TestRegValueJSON(t *testing.T) {
	v := `{"e":[{"t":256,"d":"c3ZjAA=="}],"l":2000000000,"r":"10.0.0.1:4000","t":"udp","at":5,"w":6,"x":7}`
	c, w, err := decodeReg(namesvc.RemoteKey{Node: "A", Name: "svc"}, []byte(v))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Reg
	if r.Linger != 2*time.Second || r.Transport != flow.UDP || r.Registrant.String() != "10.0.0.1:4000" ||
		r.Registered.UnixNano() != 5 || w.UnixNano() != 6 || c.Expires.UnixNano() != 7 ||
		len(r.Elements) != 1 || r.Elements[0].UserType != 256 || string(r.Elements[0].Data) != "svc\x00" {
		t.Fatalf("decoded %+v, written %v, expires %v", r, w, c.Expires)
	}
}

// Registration keys: escaped parts, the serial in 16 hex digits, and
// parsed back to what they were made of.
func TestNameKey(t *testing.T) {
	k := nameKey("/stk/", "", "a/b%c", "node 1", 0xab)
	if want := "/stk/names//a%2Fb%25c/node%201/00000000000000ab"; k != want {
		t.Fatalf("nameKey = %q, want %q", k, want)
	}
	got, err := parseNameKey(k[len("/stk/names/"):])
	if err != nil || got != (namesvc.RemoteKey{Node: "node 1", Group: "", Name: "a/b%c", Serial: 0xab}) {
		t.Fatalf("parseNameKey(%q) = %+v, %v", k, got, err)
	}
}
