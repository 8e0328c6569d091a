package namesvc

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/pcap"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/wiretest"
	"github.com/stk-go/stk/seq"
)

// Conformance: the C clients' requests from the captures are replayed, in
// capture order and on the capture's clock, against our server over real
// loopback sockets, and our replies are compared element by element, in
// order, with what stknamed sent. Request ids are those of the replayed
// bytes, so they match; only the server id differs.

const capturesDir = "../testdata/captures/"

// replayServer is a Server behind its own TCP and UDP flows, so the test
// knows when a closed connection has reached Disconnect.
type replayServer struct {
	s       *Server
	clk     *testutil.Clock
	tcp     *flow.TCPServer
	udp     *flow.UDPFlow
	gone    chan struct{} // one token per Disconnect
	tcpAddr netip.AddrPort
	udpAddr netip.AddrPort
}

func startReplayServer(t *testing.T, clk *testutil.Clock) *replayServer {
	t.Helper()
	s, _ := newTestServer(t, ServerConfig{Now: clk.Now})
	rs := &replayServer{s: s, clk: clk, gone: make(chan struct{}, 100)}
	opts := flow.Options{Handler: s.Handle, Logger: testutil.Logger(t), EventLoops: 2,
		OnDisconnect: func(p flow.Peer, _ error) { s.Disconnect(p); rs.gone <- struct{}{} }}
	var err error
	if rs.tcp, err = flow.ListenTCP("127.0.0.1:0", opts); err != nil {
		t.Fatal(err)
	}
	opts.OnDisconnect = nil
	if rs.udp, err = flow.NewUDP(flow.UDPConfig{Bind: "127.0.0.1:0"}, opts); err != nil {
		t.Fatal(err)
	}
	rs.tcpAddr, rs.udpAddr = rs.tcp.LocalAddr(), rs.udp.LocalAddr()
	return rs
}

func (rs *replayServer) close() {
	rs.tcp.Close()
	rs.udp.Close()
	rs.s.Close()
}

// replayClient is one captured client: a TCP connection or a UDP socket.
type replayClient struct {
	t        *testing.T
	label    string
	tcp      net.Conn
	udp      *net.UDPConn
	udpTo    netip.AddrPort
	isTCP    bool
	closed   bool
	in       wiretest.Reader // reads tcp
	sent     []*seq.Sequence // captured sequences sent
	got      []*seq.Sequence // everything received but barrier echoes
	want     []*seq.Sequence // what the C server sent this client
	barriers uint64
	serverID uint64 // of the server it talked to
}

var barrierBase uint64 = 0xba77_0000_0000

// barrier sends a smartbeat with a marker service id and collects what
// arrives until its echo: everything the server sent before it.
func (c *replayClient) barrier() {
	c.t.Helper()
	c.barriers++
	marker := barrierBase + c.barriers
	sb := smartbeatSequence(time.Now(), netip.AddrPort{})
	binary.LittleEndian.PutUint64(sb.Elements[0].Data, marker)
	c.write(sb)
	deadline := time.Now().Add(5 * time.Second)
	for {
		q := c.read(deadline)
		if q == nil {
			c.t.Fatalf("%s: no echo of the barrier smartbeat", c.label)
		}
		if q.ID == seq.IDSmartbeat && len(q.Elements) > 0 && binary.LittleEndian.Uint64(q.Elements[0].Data) == marker {
			return
		}
		c.got = append(c.got, q)
	}
}

func (c *replayClient) write(q *seq.Sequence) {
	c.t.Helper()
	if c.tcp != nil {
		b, err := seq.AppendTCP(nil, q)
		if err != nil {
			c.t.Fatal(err)
		}
		if _, err := c.tcp.Write(b); err != nil {
			c.t.Fatal(err)
		}
		return
	}
	q.Generation++
	_, err := seq.AppendUDP(nil, q, 1, func(d []byte) error {
		_, err := c.udp.WriteToUDPAddrPort(d, c.udpTo)
		return err
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

func (c *replayClient) read(deadline time.Time) *seq.Sequence {
	c.t.Helper()
	if c.tcp != nil {
		if c.in.Conn != c.tcp {
			c.in = wiretest.Reader{Conn: c.tcp, Label: c.label}
		}
		f, ok := c.in.Next(c.t, deadline)
		if !ok {
			return nil
		}
		return f.Seq
	}
	c.udp.SetReadDeadline(deadline)
	tmp := make([]byte, 65536)
	m, err := c.udp.Read(tmp)
	if err != nil {
		return nil
	}
	var q seq.Sequence
	if err := seq.DecodeUDP(&q, tmp[:m]); err != nil {
		c.t.Fatalf("%s: %v", c.label, err)
	}
	return q.Clone()
}

// check compares what c received with what the C server sent it.
func (c *replayClient) check() {
	t := c.t
	t.Helper()
	var gotNames, wantNames, gotEchoes, wantEchoes []*seq.Sequence
	split := func(in []*seq.Sequence, names, echoes *[]*seq.Sequence) {
		for _, q := range in {
			if q.ID == seq.IDSmartbeat {
				*echoes = append(*echoes, q)
			} else {
				*names = append(*names, q)
			}
		}
	}
	split(c.got, &gotNames, &gotEchoes)
	split(c.want, &wantNames, &wantEchoes)
	if len(gotNames) != len(wantNames) {
		t.Errorf("%s: %d name replies, C sent %d", c.label, len(gotNames), len(wantNames))
		for _, q := range gotNames {
			t.Logf("  got  %s", elems(q))
		}
		for _, q := range wantNames {
			t.Logf("  want %s", elems(q))
		}
	}
	for i := range min(len(gotNames), len(wantNames)) {
		if err := sameSeq(gotNames[i], wantNames[i]); err != nil {
			t.Errorf("%s: name reply %d: %v", c.label, i, err)
		}
	}
	sent := 0
	for _, q := range c.sent {
		if q.ID == seq.IDSmartbeat {
			sent++
		}
	}
	if len(gotEchoes) != sent {
		t.Errorf("%s: %d keep-alive echoes for %d smartbeats", c.label, len(gotEchoes), sent)
	}
	for i := range min(len(gotEchoes), len(wantEchoes)) {
		g, w := gotEchoes[i], wantEchoes[i]
		n := len(g.Elements)
		if n == 0 || g.Elements[n-1].UserType != seq.UTNSID {
			t.Errorf("%s: echo %d has no NS_ID last: %s", c.label, i, elems(g))
			continue
		}
		if id, _ := g.Elements[n-1].Uint64(); id != c.serverID {
			t.Errorf("%s: echo NS_ID %#x, want the server's %#x", c.label, id, c.serverID)
		}
		gc, wc := *g, *w
		gc.Elements = slices.Clone(g.Elements)
		gc.Elements[n-1].Data = w.Elements[len(w.Elements)-1].Data // server ids differ
		if err := sameSeq(&gc, &wc); err != nil {
			t.Errorf("%s: echo %d: %v", c.label, i, err)
		}
		if c.isTCP && seq.TCPSize(g) != seq.TCPSize(w) {
			t.Errorf("%s: echo %d is %d bytes, C's %d", c.label, i, seq.TCPSize(g), seq.TCPSize(w))
		}
		if !c.isTCP && g.Generation != w.Generation {
			t.Errorf("%s: echo %d generation %d, C's %d", c.label, i, g.Generation, w.Generation)
		}
	}
}

func decodeDatagram(t *testing.T, d []byte) *seq.Sequence {
	t.Helper()
	var q seq.Sequence
	if err := seq.DecodeUDP(&q, d); err != nil {
		t.Fatal(err)
	}
	return q.Clone()
}

// replayEvent is one step of a capture: a client opens a TCP connection
// and sends its whole stream, sends a datagram, or closes its connection.
type replayEvent struct {
	at    time.Time
	kind  int // evOpen, evDatagram, evClose
	from  netip.AddrPort
	data  []byte
	order int
}

const (
	evOpen = iota
	evDatagram
	evClose
)

// replayResult is what a replay leaves for scenario-specific checks.
type replayResult struct {
	clients   map[netip.AddrPort]*replayClient
	serverIDs []uint64 // one per server run
}

// replayCapture replays the name-service traffic of a capture. prelude
// requests (captured elsewhere) are sent first from a connection that
// stays open; fix may adjust the expected replies before the check.
func replayCapture(t *testing.T, name string, prelude []*seq.Sequence, fix func(map[netip.AddrPort]*replayClient)) replayResult {
	t.Helper()
	packets, err := pcap.Read(capturesDir + name + ".pcap")
	if err != nil {
		t.Fatal(err)
	}
	const port = DefaultPort
	var events []replayEvent
	want := map[netip.AddrPort][]*seq.Sequence{}    // TCP
	wantUDP := map[netip.AddrPort][]*seq.Sequence{} // UDP
	sentTCP := map[netip.AddrPort][]*seq.Sequence{}
	for _, st := range pcap.Streams(packets) {
		switch {
		case st.Dst.Port() == port:
			events = append(events, replayEvent{at: st.Start, kind: evOpen, from: st.Src, data: st.Data})
			sentTCP[st.Src] = wiretest.DecodeStream(t, st.Data)
		case st.Src.Port() == port:
			want[st.Dst] = wiretest.DecodeStream(t, st.Data)
		}
	}
	closed := map[netip.AddrPort]bool{}
	for _, p := range packets {
		switch {
		case p.Proto == "tcp" && p.Dst.Port() == port && p.Flags&0x05 != 0 && !closed[p.Src]:
			closed[p.Src] = true
			events = append(events, replayEvent{at: p.Time, kind: evClose, from: p.Src})
		case p.Proto == "udp" && p.Dst.Port() == port:
			events = append(events, replayEvent{at: p.Time, kind: evDatagram, from: p.Src, data: p.Payload})
		case p.Proto == "udp" && p.Src.Port() == port:
			wantUDP[p.Dst] = append(wantUDP[p.Dst], decodeDatagram(t, p.Payload))
		}
	}
	for i := range events {
		events[i].order = i
	}
	slices.SortStableFunc(events, func(a, b replayEvent) int { return a.at.Compare(b.at) })

	clk := testutil.NewClock(events[0].at.Add(-time.Second))
	rs := startReplayServer(t, clk)
	res := replayResult{clients: map[netip.AddrPort]*replayClient{}, serverIDs: []uint64{rs.s.ID()}}
	defer func() { rs.close() }()

	if len(prelude) > 0 {
		pc := &replayClient{t: t, label: "prelude"}
		if pc.tcp, err = net.Dial("tcp", rs.tcpAddr.String()); err != nil {
			t.Fatal(err)
		}
		defer pc.tcp.Close()
		for _, q := range prelude {
			pc.write(q)
		}
		pc.barrier()
	}

	lastNSID := uint64(0)
	var all []*replayClient
	for _, ev := range events {
		clk.Set(ev.at)
		c := res.clients[ev.from]
		switch ev.kind {
		case evOpen:
			// A new server id in the captured echoes means stknamed was
			// restarted: restart ours too.
			if id := capturedNSID(want[ev.from]); id != 0 {
				if lastNSID != 0 && id != lastNSID {
					for _, old := range all {
						if old.isTCP && !old.done() {
							old.finish(rs)
						}
					}
					rs.close()
					rs = startReplayServer(t, clk)
					res.serverIDs = append(res.serverIDs, rs.s.ID())
				}
				lastNSID = id
			}
			c = &replayClient{t: t, label: fmt.Sprintf("%s tcp %v", name, ev.from), want: want[ev.from], sent: sentTCP[ev.from], serverID: rs.s.ID(), isTCP: true}
			if c.tcp, err = net.Dial("tcp", rs.tcpAddr.String()); err != nil {
				t.Fatal(err)
			}
			if _, err := c.tcp.Write(ev.data); err != nil {
				t.Fatal(err)
			}
			c.barrier()
			res.clients[ev.from] = c
			all = append(all, c)
		case evDatagram:
			if c == nil {
				c = &replayClient{t: t, label: fmt.Sprintf("%s udp %v", name, ev.from), want: wantUDP[ev.from], udpTo: rs.udpAddr, serverID: rs.s.ID()}
				if c.udp, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0"))); err != nil {
					t.Fatal(err)
				}
				res.clients[ev.from] = c
				all = append(all, c)
			}
			if _, err := c.udp.WriteToUDPAddrPort(ev.data, c.udpTo); err != nil {
				t.Fatal(err)
			}
			c.sent = append(c.sent, decodeDatagram(t, ev.data))
			c.barrier()
		case evClose:
			if c != nil && !c.done() {
				c.finish(rs)
			}
		}
	}
	for _, c := range all {
		if c.done() {
			continue
		}
		c.barrier()
		if c.isTCP {
			c.tcp.Close()
		} else {
			c.udp.Close()
		}
		c.closed = true
	}
	if fix != nil {
		fix(res.clients)
	}
	for _, c := range all {
		c.check()
	}
	return res
}

func (c *replayClient) done() bool { return c.closed }

// finish collects what the server sent c, closes the connection and waits
// until the server has processed the close.
func (c *replayClient) finish(rs *replayServer) {
	c.t.Helper()
	c.barrier()
	c.tcp.Close()
	c.closed = true
	select {
	case <-rs.gone:
	case <-time.After(5 * time.Second):
		c.t.Fatalf("%s: server did not see the connection close", c.label)
	}
}

// capturedNSID returns the server id in the first captured echo.
func capturedNSID(qs []*seq.Sequence) uint64 {
	for _, q := range qs {
		if q.ID == seq.IDSmartbeat {
			if e := q.Elements[len(q.Elements)-1]; e.UserType == seq.UTNSID {
				id, _ := e.Uint64()
				return id
			}
		}
	}
	return 0
}

// monitorRegistration returns stkhttpd's "monitor" registration from
// capture 01 (capture 02 starts after it was made).
func monitorRegistration(t *testing.T) *seq.Sequence {
	packets, err := pcap.Read(capturesDir + "01_name_registration.pcap")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range pcap.Streams(packets) {
		if st.Dst.Port() != DefaultPort {
			continue
		}
		for _, q := range wiretest.DecodeStream(t, st.Data) {
			if n, ok := q.Find(seq.UTNSName); ok && q.Type == seq.TypeRequest && n.CString() == "monitor" {
				return q
			}
		}
	}
	t.Fatal("no monitor registration in capture 01")
	return nil
}

func TestConformance01Registration(t *testing.T) {
	// Register replies [REQUEST_ID, NAME]; -M meta, -G group, -F backup
	// (no FT element), -L; "monitor" with 0x1000/0x1001; echoes 116→140.
	replayCapture(t, "01_name_registration", nil, nil)
}

func TestConformance02Lookup(t *testing.T) {
	// Found (elements reordered, REQUEST_ID last), no group (miss),
	// missing (silence), "monitor" (0x1000/0x1001 meta-data).
	res := replayCapture(t, "02_name_lookup", []*seq.Sequence{monitorRegistration(t)}, nil)
	misses := 0
	for _, c := range res.clients {
		for _, q := range c.sent {
			if q.Type == seq.TypeQuery && len(c.want) > 0 && countNames(c.got) == 0 {
				misses++
			}
		}
	}
	if misses != 2 {
		t.Errorf("%d silent lookups, want 2 (wrong group, missing name)", misses)
	}
}

func countNames(qs []*seq.Sequence) int {
	n := 0
	for _, q := range qs {
		if q.ID == seq.IDNameRequest {
			n++
		}
	}
	return n
}

func TestConformance03Linger(t *testing.T) {
	// Linger 2 s: answered 1 s after the registrant's disconnect, silent 5 s
	// after. The replay runs on the capture's clock.
	replayCapture(t, "03_name_linger", nil, nil)
}

func TestConformance04Subscribe(t *testing.T) {
	// SUBSCRIBE → REQUEST confirmation; a later registration is pushed as a
	// QUERY with the subscriber's REQUEST_ID last.
	replayCapture(t, "04_name_subscribe", nil, nil)
}

func TestConformance05UDP(t *testing.T) {
	// The name service over STK-UDP: register and lookup from two sources;
	// replies to each datagram's source, echo with generation 2.
	replayCapture(t, "05_name_udp", nil, nil)
}

func TestConformance18MultiAndUDPPersist(t *testing.T) {
	// Two connections register "dup": two answers in registration order.
	// A UDP registration with linger 1 s is still answered seconds later.
	replayCapture(t, "18_name_multi_and_udp_persist", nil, nil)
}

func TestConformance19Restart(t *testing.T) {
	// Server restart: the C client reconnects, sees a new NS_ID and
	// subscribes again; a later registration is pushed to it.
	res := replayCapture(t, "19_name_server_restart_resubscribe", nil, nil)
	if len(res.serverIDs) != 2 || res.serverIDs[0] == res.serverIDs[1] {
		t.Errorf("server ids %x: want two different ones", res.serverIDs)
	}
}

func TestConformance20UDPSubscriberFixed(t *testing.T) {
	// stknamed sends a UDP subscriber's push to the registrant's address
	// (docs/differences.md B8). Ours goes to the subscriber: expect the captured push there.
	replayCapture(t, "20_name_udp_subscribe_bug", nil, func(cs map[netip.AddrPort]*replayClient) {
		var sub *replayClient
		for _, c := range cs {
			if !c.isTCP {
				sub = c
			}
		}
		if sub == nil {
			t.Fatal("no UDP subscriber in capture 20")
		}
		for _, c := range cs {
			if !c.isTCP {
				continue
			}
			// The push C misdirected went to this registrant's port by UDP.
			for addr, other := range cs {
				if other == c {
					misdirected := wantUDPTo(t, "20_name_udp_subscribe_bug", addr)
					sub.want = append(sub.want, misdirected...)
				}
			}
		}
	})
}

// wantUDPTo returns the datagrams stknamed sent to addr.
func wantUDPTo(t *testing.T, name string, addr netip.AddrPort) []*seq.Sequence {
	packets, err := pcap.Read(capturesDir + name + ".pcap")
	if err != nil {
		t.Fatal(err)
	}
	var out []*seq.Sequence
	for _, p := range pcap.UDP(packets) {
		if p.Src.Port() == DefaultPort && p.Dst == addr {
			out = append(out, decodeDatagram(t, p.Payload))
		}
	}
	return out
}
