package flow

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/seq"
)

// closedByPeer reports whether the server closed c (a read sees EOF or a
// reset) within d.
func closedByPeer(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestTCPServerConnectionLimits(t *testing.T) {
	leakcheck.Check(t)
	got := make(chan struct{}, 1)
	srv := listen(t, Options{MaxConns: 3, MaxConnsPerIP: 2, Handler: func(Peer, *seq.Sequence) { got <- struct{}{} }})
	addr := srv.LocalAddr()
	// Two from 127.0.0.1, the per-IP limit; a third from there is refused.
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	testutil.WaitFor(t, 10*time.Second, "2 connections", func() bool { return srv.Conns() == 2 })
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	if !closedByPeer(c, 10*time.Second) {
		t.Fatal("a third connection from one IP with MaxConnsPerIP 2 was kept")
	}
	c.Close()
	// Another source address (127.0.0.2 is loopback too) fills the total.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	c2, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	held = append(held, c2)
	testutil.WaitFor(t, 10*time.Second, "3 connections", func() bool { return srv.Conns() == 3 })
	d3 := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}
	c3, err := d3.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	if !closedByPeer(c3, 10*time.Second) {
		t.Fatal("a connection beyond MaxConns 3 was kept")
	}
	c3.Close()
	if st := srv.Stats(); st.Refused != 2 || st.Connections != 3 {
		t.Fatalf("stats %+v, want 2 refused and 3 open", st)
	}
	// Slots come back when connections close.
	for _, c := range held {
		c.Close()
	}
	testutil.WaitFor(t, 10*time.Second, "no connection", func() bool { return srv.Conns() == 0 })
	cl := dial(t, addr.String(), Options{})
	if err := cl.Send(seq.New(1, "x", seq.TypeData)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("a connection after the others closed was not served")
	}
}

func TestTCPServerFrameTimeout(t *testing.T) {
	leakcheck.Check(t)
	srv := listen(t, Options{FrameTimeout: 200 * time.Millisecond})
	frame, err := seq.AppendTCP(nil, seq.New(1, "complete", seq.TypeData))
	if err != nil {
		t.Fatal(err)
	}
	// Ten bytes of a header, then nothing.
	c, err := net.Dial("tcp", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(frame[:10])
	start := time.Now()
	if !closedByPeer(c, 10*time.Second) {
		t.Fatal("a connection holding 10 bytes of a header was kept for 10 s")
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("closed after %v, before the 200 ms frame timeout", d)
	}
	// Complete frames, even far apart, and no partial one: kept.
	ok, err := net.Dial("tcp", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Close()
	for range 3 {
		ok.Write(frame)
		time.Sleep(150 * time.Millisecond)
	}
	if closedByPeer(ok, 300*time.Millisecond) {
		t.Fatal("a connection that only sends whole frames was closed by the frame timeout")
	}
	if st := srv.Stats(); st.TimedOut != 1 {
		t.Fatalf("TimedOut = %d, want 1", st.TimedOut)
	}
}

func TestTCPServerIdleTimeout(t *testing.T) {
	leakcheck.Check(t)
	disc := make(chan error, 4)
	srv := listen(t, Options{IdleTimeout: time.Second, OnDisconnect: func(_ Peer, err error) { disc <- err }})
	frame, _ := seq.AppendTCP(nil, seq.New(1, "keep-alive", seq.TypeData))
	alive, err := net.Dial("tcp", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()
	silent, err := net.Dial("tcp", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	stop := time.After(2500 * time.Millisecond)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case <-tick.C:
			alive.Write(frame)
		case <-stop:
			break loop
		}
	}
	if !closedByPeer(silent, 10*time.Second) {
		t.Fatal("a silent connection outlived the idle timeout")
	}
	if err := <-disc; !errors.Is(err, ErrTimedOut) {
		t.Fatalf("OnDisconnect reason %v, want ErrTimedOut", err)
	}
	alive.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := alive.Read(make([]byte, 1)); err == io.EOF {
		t.Fatal("a connection sending a frame every 100 ms was closed by a 1 s idle timeout")
	}
}
