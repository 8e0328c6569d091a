package flow

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
)

// sendRawSTKUDP sends s's STK-UDP datagrams from c as they are, generation
// included, leaving out the fragments whose index is in skip.
func sendRawSTKUDP(t *testing.T, c *net.UDPConn, s *seq.Sequence, skip ...int) {
	t.Helper()
	i := 0
	_, err := seq.AppendUDP(nil, s, 0x1234, func(d []byte) error {
		defer func() { i++ }()
		for _, k := range skip {
			if k == i {
				return nil
			}
		}
		_, err := c.Write(d)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func dialUDP(t *testing.T, to netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestUDPLostGenerations: a sender that resends one sequence bumps its
// generation each time; the receiver counts the generations that never
// came, once it has seen consecutive ones.
func TestUDPLostGenerations(t *testing.T) {
	rx := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{})
	c := dialUDP(t, rx.LocalAddr())
	send := func(id uint64, gens ...uint16) {
		s := seq.New(id, "gens", seq.TypeData)
		s.AddUint32(1, 7)
		for _, g := range gens {
			s.Generation = g
			sendRawSTKUDP(t, c, s)
		}
	}
	send(1, 1, 2, 3, 5, 6, 9, 8, 10) // 4 lost, then 7 and 8 taken for lost; 8 late (reordered) changes nothing
	send(2, 2, 4, 6, 8)              // every other one: a sender taking turns between destinations
	send(3, 1, 2, 3000, 3001)        // a jump past the window: restarted, not 2997 lost
	send(4, 65534, 65535, 0, 2)      // wraps: 1 lost
	total := 8 + 4 + 4 + 4
	testutil.WaitFor(t, 10*time.Second, "every datagram", func() bool { return rx.Stats().SequencesIn == uint64(total) })
	if st := rx.Stats(); st.LostSequences != 4 || st.LostFragments != 0 || st.Dropped != 0 {
		t.Errorf("LostSequences %d, LostFragments %d, Dropped %d; want 4, 0, 0", st.LostSequences, st.LostFragments, st.Dropped)
	}
}

// TestUDPGenerationsManySenders: senders interleaved beyond the cache of
// the last one keep their own histories.
func TestUDPGenerationsManySenders(t *testing.T) {
	var g udpGenerations
	hdr := func(id uint64, gen uint16) []byte {
		var d []byte
		s := seq.New(id, "", seq.TypeData)
		s.Generation = gen
		seq.AppendUDP(nil, s, 9, func(b []byte) error { d = append([]byte(nil), b...); return nil })
		return d
	}
	from := netip.MustParseAddrPort("127.0.0.1:5000")
	var lost uint64
	for gen := uint16(1); gen <= 10; gen++ {
		for id := range uint64(50) {
			if id == 7 && gen == 5 {
				continue // sender 7 loses generation 5
			}
			if id == 8 && (gen == 3 || gen == 4) {
				continue
			}
			lost += g.see(from, hdr(id, gen))
		}
	}
	if lost != 3 {
		t.Errorf("counted %d lost, want 3", lost)
	}
	if got := g.see(from, []byte("short")); got != 0 {
		t.Errorf("a malformed datagram counted %d", got)
	}
}

// TestUDPLostFragments: a sequence missing a fragment is given up after
// ReassemblyTimeout and counted with its missing fragments.
func TestUDPLostFragments(t *testing.T) {
	// The complete sequence's five writes must all arrive within the
	// timeout: 500 ms, not 50, lets this goroutine be kept off a loaded
	// CPU between two of them.
	rx := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{ReassemblyTimeout: 500 * time.Millisecond, ReceiveBuffer: 4 << 20})
	c := dialUDP(t, rx.LocalAddr())
	s := seq.New(5, "big", seq.TypeData)
	s.Add(2, make([]byte, 5*60000)) // 5 fragments
	s.Generation = 1
	sendRawSTKUDP(t, c, s, 1, 3)
	s.Generation = 2
	sendRawSTKUDP(t, c, s)
	testutil.WaitFor(t, 10*time.Second, "the complete sequence and the loss", func() bool {
		st := rx.Stats()
		return st.SequencesIn == 1 && st.LostSequences == 1
	})
	if st := rx.Stats(); st.LostFragments != 2 || st.Dropped != 1 {
		t.Errorf("LostFragments %d, Dropped %d; want 2, 1", st.LostFragments, st.Dropped)
	}
}

// TestUDPReceiveDrops: datagrams that overflow the socket's receive buffer
// while the Handler holds the read loop up are counted by the system and
// reported; with what was delivered they make up everything sent.
func TestUDPReceiveDrops(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ReceiveDrops needs Linux's SO_MEMINFO")
	}
	hold := make(chan struct{})
	rx := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0", Raw: true}, Options{Handler: func(Peer, *seq.Sequence) { <-hold }})
	c := dialUDP(t, rx.LocalAddr())
	const n = 2000
	b := make([]byte, 1024)
	for range n {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	close(hold)
	testutil.WaitFor(t, 10*time.Second, "every datagram delivered or dropped", func() bool {
		st := rx.Stats()
		return st.SequencesIn+st.ReceiveDrops == n
	})
	st := rx.Stats()
	if st.ReceiveDrops == 0 {
		t.Errorf("no drops counted: %d delivered of %d", st.SequencesIn, n)
	}
	rx.Close()
	if after := rx.Stats(); after.ReceiveDrops != st.ReceiveDrops {
		t.Errorf("after Close ReceiveDrops is %d, was %d", after.ReceiveDrops, st.ReceiveDrops)
	}
}

// TestUDPPacedCounted: the sender counts its pauses.
func TestUDPPacedCounted(t *testing.T) {
	rx := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0"}, Options{ReceiveBuffer: 4 << 20})
	tx := newUDPFlow(t, UDPConfig{Bind: "127.0.0.1:0", Destination: rx.LocalAddr().String(), Pacing: UDPPacing{Burst: 70000, Rate: 100e6}}, Options{})
	s := seq.New(6, "paced", seq.TypeData)
	s.Add(2, make([]byte, 1<<20))
	if err := tx.Send(s); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the sequence", func() bool { return rx.Stats().SequencesIn == 1 })
	if p := tx.Stats().Paced; p == 0 {
		t.Errorf("Paced = 0 after a 1 MiB sequence with a 70 KB burst")
	}
}
