package testpeer

import (
	"errors"
	"testing"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/seq"
)

func TestPeer(t *testing.T) {
	p, q := New(flow.TCP, "127.0.0.1:40000"), New(flow.TCP, "127.0.0.1:40000")
	if p.ID() == q.ID() {
		t.Fatalf("two peers share the id %d", p.ID())
	}
	if got := p.RemoteAddr().String(); got != "127.0.0.1:40000" || p.Protocol() != flow.TCP || p.LocalAddr() != Local {
		t.Fatalf("peer at %s (%v, local %v)", got, p.Protocol(), p.LocalAddr())
	}
	s := &seq.Sequence{Name: "a"}
	if err := p.Send(s); err != nil {
		t.Fatal(err)
	}
	s.Name = "changed after Send"
	got := p.Take()
	if len(got) != 1 || got[0].Name != "a" {
		t.Fatalf("Take = %v, want the one sequence as it was sent", got)
	}
	if again := p.Take(); len(again) != 0 {
		t.Fatalf("second Take = %v, want nothing", again)
	}
	if err := p.Close(); err != nil || !p.Closed() {
		t.Fatalf("Close = %v, Closed = %v", err, p.Closed())
	}
	if err := p.Send(s); !errors.Is(err, flow.ErrClosed) {
		t.Fatalf("Send on a closed peer = %v, want flow.ErrClosed", err)
	}
}

func TestDatagramPeer(t *testing.T) {
	u := New(flow.UDP, "127.0.0.1:40000")
	v := u.Datagram("127.0.0.1:40001")
	if v.ID() != u.ID() || v.RemoteAddr().Port() != 40001 || v.Protocol() != flow.UDP {
		t.Fatalf("datagram peer %d at %v (%v); want id %d at port 40001", v.ID(), v.RemoteAddr(), v.Protocol(), u.ID())
	}
	if err := u.Close(); err != nil || u.Closed() {
		t.Fatalf("closing a UDP peer: %v, closed %v; want nothing done", err, u.Closed())
	}
	if err := u.Send(&seq.Sequence{}); err != nil {
		t.Fatalf("Send after closing a UDP peer: %v", err)
	}
}
