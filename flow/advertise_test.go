package flow

import (
	"net/netip"
	"testing"
)

func TestAdvertiseIP(t *testing.T) {
	specific := netip.MustParseAddr("127.0.0.5")
	if got := AdvertiseIP(specific, netip.Addr{}); got != specific {
		t.Errorf("a specific IP must be kept: got %v", got)
	}
	unspec := netip.IPv4Unspecified()
	got := AdvertiseIP(unspec, netip.MustParseAddr("127.0.0.1"))
	primary, ok := PrimaryIP()
	switch {
	case ok && got != primary:
		t.Errorf("0.0.0.0 toward loopback: got %v, want the primary address %v", got, primary)
	case !ok && got != netip.MustParseAddr("127.0.0.1"):
		t.Errorf("0.0.0.0 on a host with only loopback: got %v, want 127.0.0.1", got)
	}
	if !ok {
		t.Log("no IPv4 address beyond loopback here: the route case is covered by the two-host test")
		return
	}
	// Toward one of our own addresses the kernel routes through lo with
	// that address as source.
	if got := AdvertiseIP(unspec, primary); got != primary {
		t.Errorf("0.0.0.0 toward %v: got %v", primary, got)
	}
	ap := AdvertiseAddr(netip.AddrPortFrom(unspec, 7), primary)
	if ap.Port() != 7 || ap.Addr() != primary {
		t.Errorf("AdvertiseAddr: got %v", ap)
	}
}
