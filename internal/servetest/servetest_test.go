package servetest

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
)

// TestNames: a client of the started name server registers a name and
// looks it up.
func TestNames(t *testing.T) {
	_, ap := Names(t, namesvc.ServerConfig{}, "127.0.0.1:0")
	c, err := namesvc.Dial("tcp:"+ap.String(), namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info := namesvc.Info{Name: "servetest", Addresses: []namesvc.Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:7000")}}}
	if err := c.Register(ctx, info); err != nil {
		t.Fatalf("register at %s: %v", ap, err)
	}
	got, err := c.LookupOnce(ctx, "servetest", namesvc.LookupOptions{})
	if err != nil || len(got.Addresses) != 1 || got.Addresses[0] != info.Addresses[0] {
		t.Fatalf("lookup: %+v, %v; want %v", got, err, info.Addresses)
	}
}

// TestMonitor: the started monitor accepts a TCP connection on its
// address.
func TestMonitor(t *testing.T) {
	_, ap := Monitor(t, smartbeat.MonitorConfig{}, "127.0.0.1:0")
	c, err := net.DialTimeout("tcp", ap.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("connect to the monitor at %s: %v", ap, err)
	}
	c.Close()
}
