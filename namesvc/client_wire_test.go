package namesvc

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/pcap"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/wiretest"
	"github.com/stk-go/stk/seq"
)

// Our client's requests against the C client's, byte for byte.

// capturedRequest is a name request a C client sent, with its wire bytes.
type capturedRequest struct {
	raw []byte // TCP frame or STK-UDP datagram
	udp bool
	q   *seq.Sequence
}

func capturedRequests(t *testing.T, name string) []capturedRequest {
	t.Helper()
	packets, err := pcap.Read(capturesDir + name + ".pcap")
	if err != nil {
		t.Fatal(err)
	}
	var out []capturedRequest
	for _, st := range pcap.Streams(packets) {
		if st.Dst.Port() != DefaultPort {
			continue
		}
		for _, f := range wiretest.DecodeFrames(t, st.Data) {
			if f.Seq.ID == seq.IDNameRequest {
				out = append(out, capturedRequest{raw: f.Raw, q: f.Seq})
			}
		}
	}
	for _, p := range pcap.UDP(packets) {
		if p.Dst.Port() == DefaultPort {
			q := decodeDatagram(t, p.Payload)
			if q.ID == seq.IDNameRequest {
				out = append(out, capturedRequest{raw: p.Payload, udp: true, q: q})
			}
		}
	}
	return out
}

func (c capturedRequest) requestID() uint64 {
	e, _ := c.q.Find(seq.UTNSRequestID)
	v, _ := e.Uint64()
	return v
}

func (c capturedRequest) name() string {
	e, _ := c.q.Find(seq.UTNSName)
	return e.CString()
}

func findCaptured(t *testing.T, capture string, typ seq.Type, name string, group string) capturedRequest {
	t.Helper()
	for _, c := range capturedRequests(t, capture) {
		g, _ := c.q.Find(seq.UTNSGroupName)
		if c.q.Type == typ && c.name() == name && g.CString() == group {
			return c
		}
	}
	t.Fatalf("capture %s has no %v request for %q in group %q", capture, typ, name, group)
	return capturedRequest{}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// wireRegistrations are the C registrations of the captures and the Info
// our client registers for the same command line.
var wireRegistrations = []struct {
	capture, group string
	info           Info
}{
	// stkhttpd: "monitor", linger 300, no address, meta 0x1000/0x1001.
	{"01_name_registration", "", Info{Name: "monitor", Linger: 300 * time.Second, Meta: []seq.Element{
		{UserType: seq.UTMonitorTCP, Data: []byte("tcp:127.0.0.1:20001\x00")},
		{UserType: seq.UTMonitorUDP, Data: []byte("udp:127.0.0.1:20001\x00")}}}},
	// simple_name_registration -i tcp:127.0.0.1:5432 -G test -M 100,hello -M 200,world -L 3
	{"01_name_registration", "test", Info{Name: "meta_data_registration", Group: "test", Linger: 3 * time.Second,
		Addresses: []Endpoint{{"tcp", ap("127.0.0.1:5432")}}, FT: FTActive,
		Meta: []seq.Element{{UserType: 100, Data: []byte("hello\x00")}, {UserType: 200, Data: []byte("world\x00")}}}},
	// -F backup -i udp:127.0.0.2:6000 (default linger 300): no FT element.
	{"01_name_registration", "", Info{Name: "backup_name", Linger: 300 * time.Second,
		Addresses: []Endpoint{{"udp", ap("127.0.0.2:6000")}}}},
	{"03_name_linger", "", Info{Name: "short_linger", Linger: 2 * time.Second,
		Addresses: []Endpoint{{"tcp", ap("127.0.0.1:7000")}}, FT: FTActive}},
	{"04_name_subscribe", "grp", Info{Name: "sub_name", Group: "grp", Linger: time.Second,
		Addresses: []Endpoint{{"tcp", ap("127.0.0.1:7100")}}, FT: FTActive}},
	{"18_name_multi_and_udp_persist", "", Info{Name: "udp_persist", Linger: time.Second,
		Addresses: []Endpoint{{"tcp", ap("127.0.0.1:3333")}}, FT: FTActive}},
	{"05_name_udp", "test", Info{Name: "udp_registered", Group: "test", Linger: 5 * time.Second,
		Addresses: []Endpoint{{"tcp", ap("127.0.0.1:7200")}}, FT: FTActive}},
}

var wireQueries = []struct {
	capture     string
	typ         seq.Type
	name, group string
}{
	{"02_name_lookup", seq.TypeQuery, "lookup_me", "test"},
	{"02_name_lookup", seq.TypeQuery, "lookup_me", ""},
	{"02_name_lookup", seq.TypeQuery, "does_not_exist", ""},
	{"02_name_lookup", seq.TypeQuery, "monitor", ""},
	{"04_name_subscribe", seq.TypeSubscribe, "sub_name", "grp"},
	{"19_name_server_restart_resubscribe", seq.TypeSubscribe, "restart_name", ""},
	{"05_name_udp", seq.TypeQuery, "udp_registered", "test"},
	{"20_name_udp_subscribe_bug", seq.TypeSubscribe, "udp_sub_name", ""},
}

// encodeLike encodes q as c was sent: a TCP frame, or an STK-UDP datagram
// with C's generation and unique_id (the unique_id is pointer garbage in C).
func encodeLike(t *testing.T, q *seq.Sequence, c capturedRequest) []byte {
	t.Helper()
	if !c.udp {
		b, err := seq.AppendTCP(nil, q)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	q.Generation = c.q.Generation
	var out []byte
	if _, err := seq.AppendUDP(nil, q, binaryLE32(c.raw[32:]), func(d []byte) error {
		out = append(out, d...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func binaryLE32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func TestClientRequestsMatchC(t *testing.T) {
	for _, w := range wireRegistrations {
		t.Run("register "+w.info.Name, func(t *testing.T) {
			c := findCaptured(t, w.capture, seq.TypeRequest, w.info.Name, w.group)
			if err := checkInfo(&w.info); err != nil {
				t.Fatal(err)
			}
			got := encodeLike(t, buildRegister(c.requestID(), &w.info), c)
			if !bytes.Equal(got, c.raw) {
				t.Errorf("register %q:\n ours %x\n C    %x", w.info.Name, got, c.raw)
			}
		})
	}
	for _, w := range wireQueries {
		t.Run(w.typ.String()+" "+w.name+" "+w.group, func(t *testing.T) {
			c := findCaptured(t, w.capture, w.typ, w.name, w.group)
			got := encodeLike(t, buildQuery(w.typ, c.requestID(), w.name, w.group, false), c)
			if !bytes.Equal(got, c.raw) {
				t.Errorf("%v %q:\n ours %x\n C    %x", w.typ, w.name, got, c.raw)
			}
			// With the end-of-answers extension: the same plus one element.
			ext := buildQuery(w.typ, c.requestID(), w.name, w.group, true)
			last := ext.Elements[len(ext.Elements)-1]
			if last.UserType != UTEndOfAnswers || len(last.Data) != 4 {
				t.Fatalf("extension element %v", last)
			}
			ext.Elements = ext.Elements[:len(ext.Elements)-1]
			if got := encodeLike(t, ext, c); !bytes.Equal(got, c.raw) {
				t.Errorf("with the extension element removed:\n ours %x\n C    %x", got, c.raw)
			}
		})
	}
}

// TestClientSendsCRequests runs the real Client against a raw TCP listener
// and compares what it sends, request id aside, with the C client's bytes;
// and its keep-alive with the C client's layout (116 bytes, capture 01).
func TestClientSendsCRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := Dial("tcp:"+ln.Addr().String(), ClientOptions{NoEndOfAnswers: true, Logger: testutil.Logger(t), Keepalive: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// The server side goes first, so that the client neither waits for
		// its goodbye nor reconnects.
		conn.Close()
		ln.Close()
		cl.Close()
	}()
	rc := &replayClient{t: t, label: "raw server", tcp: conn, isTCP: true}
	deadline := time.Now().Add(5 * time.Second)

	// The keep-alive goes out first on connect.
	sb := rc.read(deadline)
	if sb == nil || sb.ID != seq.IDSmartbeat || seq.TCPSize(sb) != 116 || len(sb.Elements) != 2 ||
		sb.Elements[0].UserType != seq.UTSmartbeat || len(sb.Elements[0].Data) != 32 ||
		sb.Elements[1].UserType != seq.UTServiceIP || len(sb.Elements[1].Data) != 16 {
		t.Fatalf("keep-alive: %v", sb)
	}
	local := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
	if want := appendReportingIP(nil, netip.AddrPortFrom(local.Addr().Unmap(), local.Port())); !bytes.Equal(sb.Elements[1].Data, want) {
		t.Errorf("reporting IP %x, want %x", sb.Elements[1].Data, want)
	}
	if id, _ := sb.Elements[0].Uint64(); id != 0 || binaryLE32(sb.Elements[0].Data[24:]) != 0 {
		t.Errorf("keep-alive service id or checkpoint not 0: %x", sb.Elements[0].Data)
	}

	compare := func(c capturedRequest) {
		t.Helper()
		q := rc.read(deadline)
		if q == nil {
			t.Fatalf("client sent nothing for %q", c.name())
		}
		for i := range q.Elements {
			if q.Elements[i].UserType == seq.UTNSRequestID {
				q.Elements[i].Data = u64Bytes(c.requestID())
			}
		}
		if got := encodeLike(t, q, c); !bytes.Equal(got, c.raw) {
			t.Errorf("%v %q:\n ours %x\n C    %x", c.q.Type, c.name(), got, c.raw)
		}
	}
	for _, w := range wireRegistrations {
		if w.capture == "05_name_udp" {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // do not wait for a reply: the raw server sends none
		cl.Register(ctx, w.info)
		compare(findCaptured(t, w.capture, seq.TypeRequest, w.info.Name, w.group))
	}
	for _, w := range wireQueries {
		c := findCaptured(t, w.capture, w.typ, w.name, w.group)
		if c.udp {
			continue
		}
		if w.typ == seq.TypeQuery {
			if _, err := cl.Lookup(w.name, LookupOptions{Group: w.group}, nil, nil); err != nil {
				t.Fatal(err)
			}
		} else if _, err := cl.Subscribe(w.name, SubscribeOptions{Group: w.group}, nil); err != nil {
			t.Fatal(err)
		}
		compare(c)
	}
}
