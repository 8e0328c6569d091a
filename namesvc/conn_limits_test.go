package namesvc

import (
	"net"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
)

// TestServerConnectionTimeouts: a connection holding ten bytes of a frame
// header is closed by the frame timeout, one that never sends anything by
// the idle timeout, while a client that only keeps alive (500 ms) stays
// connected through several idle timeouts.
func TestServerConnectionTimeouts(t *testing.T) {
	def := ServerConfig{}.withDefaults()
	if def.Flow.IdleTimeout != DefaultIdleTimeout || def.Flow.FrameTimeout != DefaultFrameTimeout || def.Flow.MaxConnsPerIP != DefaultMaxConnsPerIP {
		t.Fatalf("defaults %+v", def.Flow)
	}
	ts := startServer(t, ServerConfig{Now: time.Now, Flow: flow.Options{IdleTimeout: 1500 * time.Millisecond, FrameTimeout: 300 * time.Millisecond}}, "", "")
	closed := func(c net.Conn, within time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(within))
		for {
			_, err := c.Read(make([]byte, 256))
			if err == nil {
				continue
			}
			ne, ok := err.(net.Error)
			return !(ok && ne.Timeout())
		}
	}
	half, err := net.Dial("tcp", ts.tcpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.Write(make([]byte, 10))
	silent, err := net.Dial("tcp", ts.tcpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	c := dial(t, ts.tcp(), ClientOptions{})
	if !closed(half, 5*time.Second) {
		t.Fatal("a connection holding ten header bytes was kept for 5 s")
	}
	if !closed(silent, 10*time.Second) {
		t.Fatal("a connection that never sent a frame outlived the idle timeout")
	}
	time.Sleep(2 * time.Second) // more than an idle timeout of keep-alives only
	if !c.Connected() || c.Stats().Reconnects != 0 {
		t.Fatalf("a client sending only keep-alives was cut: connected %v, stats %+v", c.Connected(), c.Stats())
	}
}
