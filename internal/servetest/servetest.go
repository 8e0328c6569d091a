// Package servetest starts the project's servers in a test's own process:
// a name server (namesvc.Server) or a monitor (smartbeat.Monitor) serving
// TCP, closed when the test ends. The tests of namesvc and smartbeat
// themselves cannot use it (it imports them).
package servetest

import (
	"net/netip"
	"testing"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/smartbeat"
)

// Names starts a name server with cfg (its Logger discarding if nil)
// serving TCP on bind ("127.0.0.1:0" for a free loopback port) and returns
// it with the address it listens on; the test fails if it cannot.
func Names(t testing.TB, cfg namesvc.ServerConfig, bind string) (*namesvc.Server, netip.AddrPort) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testutil.Discard()
	}
	s, err := namesvc.NewServer(cfg)
	if err != nil {
		t.Fatalf("name server: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	ap, err := s.ServeTCP(bind)
	if err != nil {
		t.Fatalf("name server on %s: %v", bind, err)
	}
	return s, ap
}

// Monitor starts a monitor with cfg (its Logger discarding if nil) serving
// TCP on bind ("127.0.0.1:0" for a free loopback port) and returns it with
// the address it listens on; the test fails if it cannot.
func Monitor(t testing.TB, cfg smartbeat.MonitorConfig, bind string) (*smartbeat.Monitor, netip.AddrPort) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testutil.Discard()
	}
	m, err := smartbeat.NewMonitor(cfg)
	if err != nil {
		t.Fatalf("monitor: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	ap, err := m.ServeTCP(bind)
	if err != nil {
		t.Fatalf("monitor on %s: %v", bind, err)
	}
	return m, ap
}
