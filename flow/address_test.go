package flow

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Address
	}{
		{"", Address{Protocol: TCP}},
		{"127.0.0.1", Address{Protocol: TCP, Host: "127.0.0.1"}},
		{"127.0.0.1:20002", Address{Protocol: TCP, Host: "127.0.0.1", Port: 20002}},
		{"127.0.0.1:", Address{Protocol: TCP, Host: "127.0.0.1"}},
		{"udp:10.0.0.1:9", Address{Protocol: UDP, Host: "10.0.0.1", Port: 9}},
		{"RawUDP:10.0.0.1", Address{Protocol: RawUDP, Host: "10.0.0.1"}},
		{"multicast::5000", Address{Protocol: Multicast, Port: 5000}},
		{"tcp", Address{Protocol: TCP}},
		{"lookup:my name:x", Address{Lookup: "my name:x"}},
		{"tls:127.0.0.1:20012", Address{Protocol: TCP, Host: "127.0.0.1", Port: 20012, TLS: true}},
		{"TLS:10.0.0.1", Address{Protocol: TCP, Host: "10.0.0.1", TLS: true}},
	} {
		got, err := ParseAddress(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseAddress(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if a, _ := ParseAddress("tls:127.0.0.1:20012"); a.String() != "tls:127.0.0.1:20012" {
		t.Errorf("tls address formats as %q", a.String())
	}
}

// TestParseAddressErrors checks that each error names what is wrong.
func TestParseAddressErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[::1]:20002", `address "[::1]:20002": IPv6 is not supported: STK's wire format carries IPv4 addresses only`},
		{"::1", "IPv6 is not supported"},
		{"tcp:::1", "IPv6 is not supported"},
		{"udp:fe80::1:5000", "IPv6 is not supported"},
		{"foo:1.2.3.4", `unknown protocol "foo" (want tcp, udp, rawudp, multicast, tls or lookup)`},
		{"foo:1.2.3.4:80", `unknown protocol "foo"`},
		{"1.2.3.4:5:6", `too many ':' (want [protocol:]ip[:port])`},
		{"localhost:20002", `"localhost" is not an IPv4 address (host names are resolved by ResolveAddress, not here)`},
		{"1.2.3.4:abc", `bad port "abc" (want 0-65535)`},
		{"1.2.3.4:70000", `bad port "70000"`},
		{"lookup:", "lookup needs a name"},
	} {
		_, err := ParseAddress(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAddress(%q) error = %v; want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func TestResolveAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		in   string
		want Address
	}{
		{"localhost:20002", Address{Protocol: TCP, Host: "127.0.0.1", Port: 20002}},
		{"udp:localhost", Address{Protocol: UDP, Host: "127.0.0.1"}},
		{"10.1.2.3:4", Address{Protocol: TCP, Host: "10.1.2.3", Port: 4}},
		{"lookup:monitor", Address{Lookup: "monitor"}},
	} {
		got, err := ResolveAddress(ctx, tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ResolveAddress(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		// .invalid never resolves (RFC 6761): answered from /etc/hosts, a
		// resolver or the lack of one, it is an error either way.
		{"tcp:nosuchhost.invalid:1", `"nosuchhost.invalid"`},
		{"[::1]:1", "IPv6 is not supported"},
		{"bogus:localhost:1", `unknown protocol "bogus"`},
	} {
		_, err := ResolveAddress(ctx, tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ResolveAddress(%q) error = %v; want it to contain %q", tc.in, err, tc.want)
		}
	}
}

// A tls: address must never turn into a plain TCP connection: only code
// that sets up TLS itself reads it, through HostAddrPort.
func TestTLSAddressIsNotPlainTCP(t *testing.T) {
	a, err := ParseAddress("tls:127.0.0.1:20012")
	if err != nil || !a.TLS {
		t.Fatalf("ParseAddress: %+v, %v", a, err)
	}
	if _, err := a.AddrPort(); err == nil || !strings.Contains(err.Error(), "TLS is supported by the name service only") {
		t.Fatalf("AddrPort of a tls: address: %v, want a refusal", err)
	}
	if ap, err := a.HostAddrPort(); err != nil || ap.String() != "127.0.0.1:20012" {
		t.Fatalf("HostAddrPort: %v, %v", ap, err)
	}
}
