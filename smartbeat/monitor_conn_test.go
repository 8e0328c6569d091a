package smartbeat

import (
	"net"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil"
)

// TestMonitorCutsHalfFrames: a connection that sends ten bytes of a frame
// header and stops is closed by the monitor's frame timeout, and the
// defaults turn the timeouts and the per-address bound on.
func TestMonitorCutsHalfFrames(t *testing.T) {
	def := MonitorConfig{}.withDefaults()
	if def.Flow.IdleTimeout != DefaultMonitorIdleTimeout || def.Flow.FrameTimeout != DefaultMonitorFrameTimeout || def.Flow.MaxConnsPerIP != DefaultMonitorMaxConnsPerIP {
		t.Fatalf("defaults %+v", def.Flow)
	}
	m, err := NewMonitor(MonitorConfig{Logger: testutil.Discard(), Flow: flow.Options{FrameTimeout: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	addr, err := m.ServeTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(make([]byte, 10))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from the monitor")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a connection holding ten header bytes was kept for 5 s")
	}
}
