package listeners

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testprog/multicast"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/tlstest"
	"github.com/stk-go/stk/seq"
)

const waitLimit = 10 * time.Second

var errTestClosed = errors.New("test: closed")

// received collects what the set's handler got, by the sequence's name.
type received struct {
	mu    sync.Mutex
	names map[string]flow.Protocol
	tls   map[string]bool // the peer was a flow.TLSPeer
	gone  int
}

func (r *received) handle(from flow.Peer, s *seq.Sequence) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names[s.Name] = from.Protocol()
	_, r.tls[s.Name] = from.(flow.TLSPeer)
}

func (r *received) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, waitLimit, what, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return cond()
	})
}

// TestSet: one set serves TCP, TLS, UDP (and multicast where the host
// can) for one handler; TCP and TLS disconnects are reported; Flows lists
// them; Close closes them and later Serve calls fail with Config.Closed.
func TestSet(t *testing.T) {
	r := &received{names: map[string]flow.Protocol{}, tls: map[string]bool{}}
	s := New(Config{What: "test", Handler: r.handle, Logger: testutil.Discard(), Closed: errTestClosed,
		OnDisconnect: func(flow.Peer) { r.mu.Lock(); r.gone++; r.mu.Unlock() }})
	defer s.Close()

	tcp, err := s.TCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca := tlstest.NewCA(t, "ls-ca")
	srv := ca.Server(t, "ls")
	scfg, err := flow.NewServerTLS(srv.CertFile, srv.KeyFile, "", testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	tlsFlow, err := s.TLS("127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TLS("127.0.0.1:0", nil); err == nil || !strings.Contains(err.Error(), "no TLS configuration") {
		t.Errorf("TLS without a configuration: %v", err)
	}
	udp, err := s.UDP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o := s.Options("tcp", "1.2.3.4:5"); o.Name != "test tcp 1.2.3.4:5" || o.Logger == nil || o.Handler == nil {
		t.Errorf("default options: name %q, logger %v, handler set %v", o.Name, o.Logger, o.Handler != nil)
	}

	send := func(dial string, opts flow.Options, name string) {
		t.Helper()
		c, err := flow.DialTCP(dial, opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := c.WaitConnected(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.Send(seq.New(1, name, seq.TypeData)); err != nil {
			t.Fatal(err)
		}
		r.wait(t, name+" to arrive", func() bool { _, ok := r.names[name]; return ok })
		c.Close()
	}
	send(tcp.LocalAddr().String(), flow.Options{Logger: testutil.Discard()}, "over-tcp")
	ccfg, err := flow.NewClientTLS(ca.CertFile, "", "", testutil.Discard())
	if err != nil {
		t.Fatal(err)
	}
	send(tlsFlow.LocalAddr().String(), flow.Options{Logger: testutil.Discard(), TLS: ccfg}, "over-tls")
	r.wait(t, "two disconnects", func() bool { return r.gone == 2 })

	u, err := flow.NewUDP(flow.UDPConfig{Bind: "127.0.0.1:0", Destination: udp.LocalAddr().String()}, flow.Options{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	// Datagrams may be lost: send until one arrives.
	for deadline := time.Now().Add(waitLimit); ; {
		u.Send(seq.New(1, "over-udp", seq.TypeData))
		r.mu.Lock()
		_, ok := r.names["over-udp"]
		r.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no datagram arrived")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	if r.names["over-tcp"] != flow.TCP || r.names["over-tls"] != flow.TCP || !r.tls["over-tls"] || r.tls["over-tcp"] || r.names["over-udp"] != flow.UDP {
		t.Errorf("received %v, TLS peers %v", r.names, r.tls)
	}
	r.mu.Unlock()
	if n := len(s.Flows()); n != 3 {
		t.Errorf("%d flows, want 3", n)
	}
	if _, _, err := s.Multicast("not-a-group", 20001); err == nil || !strings.Contains(err.Error(), "224.10.10.20:20001") {
		t.Errorf("bad group: %v", err)
	}

	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if len(s.Flows()) != 0 || !s.Closed() {
		t.Error("flows left after Close")
	}
	if _, err := s.TCP("127.0.0.1:0"); !errors.Is(err, errTestClosed) {
		t.Errorf("TCP after Close: %v, want %v", err, errTestClosed)
	}
	if c, err := flow.DialTCP(tcp.LocalAddr().String(), flow.Options{Logger: testutil.Discard(), DialTimeout: 200 * time.Millisecond}); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		if c.WaitConnected(ctx) == nil {
			t.Error("the TCP listener still accepts after Close")
		}
		cancel()
		c.Close()
	}
}

// TestSetMulticast: Multicast joins a group on the port given (0: the
// system picks) and says which group and port it serves.
func TestSetMulticast(t *testing.T) {
	multicast.Need(t)
	s := New(Config{What: "test", Logger: testutil.Discard()})
	defer s.Close()
	group := "239.77.91.17"
	mc, gp, err := s.Multicast(group+":0", 20001)
	if err != nil {
		t.Fatal(err)
	}
	if gp.Addr() != netip.MustParseAddr(group) || gp.Port() != mc.LocalAddr().Port() || gp.Port() == 0 {
		t.Errorf("multicast serves %v, bound %v", gp, mc.LocalAddr())
	}
	if len(s.Flows()) != 1 {
		t.Errorf("flows %v", s.Flows())
	}
}

// TestServerDefaults: unset limits take the server's defaults; set ones,
// and negative ones (a limit turned off), are kept.
func TestServerDefaults(t *testing.T) {
	d := flow.Options{MaxSequenceSize: 100, IdleTimeout: time.Minute, FrameTimeout: time.Second, MaxConnsPerIP: 7}
	if got := ServerDefaults(flow.Options{Name: "x"}, d); got.MaxSequenceSize != 100 || got.IdleTimeout != time.Minute ||
		got.FrameTimeout != time.Second || got.MaxConnsPerIP != 7 || got.Name != "x" {
		t.Errorf("unset: %+v", got)
	}
	set := flow.Options{MaxSequenceSize: 5, IdleTimeout: -1, FrameTimeout: 2 * time.Second, MaxConnsPerIP: -1}
	if got := ServerDefaults(set, d); got.MaxSequenceSize != 5 || got.IdleTimeout != -1 ||
		got.FrameTimeout != 2*time.Second || got.MaxConnsPerIP != -1 {
		t.Errorf("set: %+v, want %+v", got, set)
	}
}
