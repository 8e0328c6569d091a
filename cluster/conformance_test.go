package cluster_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/etcdtest"
	"github.com/stk-go/stk/internal/pcap"
	"github.com/stk-go/stk/internal/wiretest"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// C compatibility with clustering on: the C clients' name-service
// traffic of the captures (testdata/captures, recorded against the C
// stknamed) is replayed against two clustered nodes. Each registrant's
// stream goes to node a; each other client's (lookups, subscriptions) to
// node b, whose answers come from a's registrations through etcd, and the
// same bytes at once to a twin connection at a (the node that owns the
// registrations, answering as a single node does). b's answers must be
// byte-identical to a's (the request ids are the replayed ones, so
// identical too), and the same sequences, element by element, as the ones
// stknamed sent that client (namesvc's conformance tests prove a single
// node sends those).

const capturesDir = "../testdata/captures/"

// capConn is one replayed connection.
type capConn struct {
	wiretest.Reader
	got      []wiretest.Frame // name frames received (smartbeat echoes left out)
	barriers uint64
}

func dialCap(t *testing.T, label, addr string) *capConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(addr, "tcp:"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &capConn{Reader: wiretest.Reader{Conn: c, Label: label}}
}

func (c *capConn) write(t *testing.T, b []byte) {
	t.Helper()
	if _, err := c.Conn.Write(b); err != nil {
		t.Fatalf("%s: %v", c.Label, err)
	}
}

var capMarker uint64 = 0xc1a5_7e00_0000

// barrier sends a smartbeat (beat, with a marker service id) and collects
// the name frames that arrive before its echo: everything the node sent
// before it.
func (c *capConn) barrier(t *testing.T, beat *seq.Sequence) {
	t.Helper()
	c.barriers++
	marker := capMarker + c.barriers
	sb := beat.Clone()
	binary.LittleEndian.PutUint64(sb.Elements[0].Data, marker)
	b, err := seq.AppendTCP(nil, sb)
	if err != nil {
		t.Fatal(err)
	}
	c.write(t, b)
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, ok := c.Next(t, deadline)
		if !ok {
			t.Fatalf("%s: no echo of the barrier smartbeat", c.Label)
		}
		if f.Seq.ID == seq.IDSmartbeat {
			if binary.LittleEndian.Uint64(f.Seq.Elements[0].Data) == marker {
				return
			}
			continue // the echo of a C client's keep-alive
		}
		c.got = append(c.got, f)
	}
}

// collect waits at most d until c has received n name frames: a push
// made by b's cluster goroutine may trail a barrier echo.
func (c *capConn) collect(t *testing.T, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for len(c.got) < n {
		f, ok := c.Next(t, deadline)
		if !ok {
			return
		}
		if f.Seq.ID != seq.IDSmartbeat {
			c.got = append(c.got, f)
		}
	}
}

func nameFrames(qs []*seq.Sequence) []*seq.Sequence {
	var out []*seq.Sequence
	for _, q := range qs {
		if q.ID != seq.IDSmartbeat {
			out = append(out, q)
		}
	}
	return out
}

func describeSeq(q *seq.Sequence) string {
	var b strings.Builder
	fmt.Fprintf(&b, "id=%#x type=%v", q.ID, q.Type)
	for _, e := range q.Elements {
		fmt.Fprintf(&b, " %d:%x", e.UserType, e.Data)
	}
	return b.String()
}

// capturedRegistration returns the registration of name in capture cp.
func capturedRegistration(t *testing.T, cp, name string) []byte {
	t.Helper()
	packets, err := pcap.Read(capturesDir + cp + ".pcap")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range pcap.Streams(packets) {
		if st.Dst.Port() != namesvc.DefaultPort {
			continue
		}
		for _, q := range wiretest.DecodeStream(t, st.Data) {
			if n, ok := q.Find(seq.UTNSName); ok && q.ID == seq.IDNameRequest && q.Type == seq.TypeRequest && n.CString() == name {
				b, err := seq.AppendTCP(nil, q)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
		}
	}
	t.Fatalf("no registration of %q in capture %s", name, cp)
	return nil
}

// ownView describes srv's own registrations (node "") or those it holds of
// node, as lookups see them: what b must hold of a before b answers as a.
func ownView(srv *namesvc.Server, node string) string {
	var b strings.Builder
	for _, e := range srv.Names() {
		if e.Node == node {
			fmt.Fprintf(&b, "%s/%s %+v lingering=%v expires=%d\n", e.Group, e.Name, e.Info, e.Lingering, e.Expires.UnixNano())
		}
	}
	return b.String()
}

func TestConformanceClustered(t *testing.T) {
	etcd := etcdtest.Start(t, 1)
	eps := etcd.Endpoints()
	a := startNode(t, eps, "a", 3*time.Second)
	b := startNode(t, eps, "b", 3*time.Second)
	synced := func(t *testing.T) {
		t.Helper()
		waitFor(t, 5*time.Second, func() bool { return ownView(a.srv, "") == ownView(b.srv, "a") },
			func() string {
				return fmt.Sprintf("b's view of a:\n%s\nwant a's own:\n%s", ownView(b.srv, "a"), ownView(a.srv, ""))
			})
	}
	for _, tc := range []struct {
		capture string
		prelude []byte // registrations sent to a first, from a connection kept open
		// realtime replays on the capture's schedule: its lookups
		// depend on how long ago a registrant went (the linger).
		realtime bool
	}{
		{"02_name_lookup", capturedRegistration(t, "01_name_registration", "monitor"), false},
		{"03_name_linger", nil, true},
		{"04_name_subscribe", nil, false},
	} {
		t.Run(tc.capture, func(t *testing.T) {
			replayClustered(t, a, b, tc.capture, tc.prelude, tc.realtime, synced)
		})
	}
}

type capEvent struct {
	at    time.Time
	close bool
	from  netip.AddrPort
	data  []byte
}

func replayClustered(t *testing.T, a, b *testNode, capture string, prelude []byte, realtime bool, synced func(*testing.T)) {
	packets, err := pcap.Read(capturesDir + capture + ".pcap")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(namesvc.DefaultPort)
	var events []capEvent
	want := map[netip.AddrPort][]*seq.Sequence{}
	sent := map[netip.AddrPort][]*seq.Sequence{}
	var beat *seq.Sequence // a C client's keep-alive, for barriers
	for _, st := range pcap.Streams(packets) {
		switch {
		case st.Dst.Port() == port:
			events = append(events, capEvent{at: st.Start, from: st.Src, data: st.Data})
			sent[st.Src] = wiretest.DecodeStream(t, st.Data)
			for _, q := range sent[st.Src] {
				if q.ID == seq.IDSmartbeat && beat == nil {
					beat = q
				}
			}
		case st.Src.Port() == port:
			want[st.Dst] = nameFrames(wiretest.DecodeStream(t, st.Data))
		}
	}
	if beat == nil {
		t.Fatalf("%s: no smartbeat from a C client to use as a barrier", capture)
	}
	closed := map[netip.AddrPort]bool{}
	for _, p := range packets {
		if p.Proto == "tcp" && p.Dst.Port() == port && p.Flags&0x05 != 0 && !closed[p.Src] {
			closed[p.Src] = true
			events = append(events, capEvent{at: p.Time, close: true, from: p.Src})
		}
	}
	slices.SortStableFunc(events, func(x, y capEvent) int { return x.at.Compare(y.at) })

	if prelude != nil {
		pc := dialCap(t, "prelude", a.addr)
		pc.write(t, prelude)
		pc.barrier(t, beat)
		synced(t)
	}
	registrant := func(qs []*seq.Sequence) bool {
		for _, q := range qs {
			if q.ID == seq.IDNameRequest && q.Type == seq.TypeRequest {
				return true
			}
		}
		return false
	}
	type client struct {
		from     netip.AddrPort
		atA, atB *capConn // a registrant has atA only
		names    []string // group/name it registered
		open     bool
	}
	clients := map[netip.AddrPort]*client{}
	var order []*client
	start, first := time.Now(), events[0].at
	for _, ev := range events {
		if realtime {
			time.Sleep(time.Until(start.Add(ev.at.Sub(first)))) // the capture's schedule
		}
		c := clients[ev.from]
		switch {
		case !ev.close:
			c = &client{from: ev.from, open: true}
			clients[ev.from], order = c, append(order, c)
			if registrant(sent[ev.from]) {
				c.atA = dialCap(t, fmt.Sprintf("%s registrant %v at a", capture, ev.from), a.addr)
				c.atA.write(t, ev.data)
				c.atA.barrier(t, beat)
				for _, q := range sent[ev.from] {
					if n, ok := q.Find(seq.UTNSName); ok && q.ID == seq.IDNameRequest && q.Type == seq.TypeRequest {
						g, _ := q.Find(seq.UTNSGroupName)
						c.names = append(c.names, g.CString()+"/"+n.CString())
					}
				}
				synced(t)
				continue
			}
			c.atB = dialCap(t, fmt.Sprintf("%s client %v at b", capture, ev.from), b.addr)
			c.atA = dialCap(t, fmt.Sprintf("%s twin of client %v at a", capture, ev.from), a.addr)
			c.atB.write(t, ev.data)
			c.atA.write(t, ev.data)
			c.atB.barrier(t, beat)
			c.atA.barrier(t, beat)
		case c != nil && c.open:
			c.open = false
			if c.atB == nil {
				// A registrant goes: its names linger at a, then at b.
				c.atA.barrier(t, beat)
				c.atA.Conn.Close()
				waitFor(t, 5*time.Second, func() bool {
					for _, e := range a.srv.Names() {
						if e.Node == "" && slices.Contains(c.names, e.Group+"/"+e.Name) && !e.Lingering {
							return false
						}
					}
					return true
				}, func() string { return fmt.Sprintf("%s: a did not see %v's connection close", capture, c.from) })
				synced(t)
				continue
			}
			c.atB.barrier(t, beat)
			c.atA.barrier(t, beat)
			c.atB.Conn.Close()
			c.atA.Conn.Close()
		}
	}
	for _, c := range order {
		if c.atB == nil {
			continue
		}
		w := want[c.from]
		if c.open {
			c.atB.barrier(t, beat)
			c.atA.barrier(t, beat)
		}
		c.atB.collect(t, len(w), 5*time.Second)
		gotB, gotA := c.atB.got, c.atA.got
		if len(gotB) != len(w) || len(gotA) != len(w) {
			for _, f := range gotB {
				t.Logf("  at b %s", describeSeq(f.Seq))
			}
			for _, q := range w {
				t.Logf("  C's  %s", describeSeq(q))
			}
			t.Errorf("%s: %d name frames at b, %d at a, C's server sent %d", c.atB.Label, len(gotB), len(gotA), len(w))
			continue
		}
		for i := range w {
			if !bytes.Equal(gotB[i].Raw, gotA[i].Raw) {
				t.Errorf("%s: frame %d at b differs from a's:\n b %x\n a %x", c.atB.Label, i, gotB[i].Raw, gotA[i].Raw)
			}
			if !gotB[i].Seq.Equal(w[i]) {
				t.Errorf("%s: frame %d at b:\n got  %s\n want %s (C's server)", c.atB.Label, i, describeSeq(gotB[i].Seq), describeSeq(w[i]))
			}
		}
		t.Logf("%s: %d name frames, byte-identical to a's, the same sequences as C's server", c.atB.Label, len(w))
	}
}
