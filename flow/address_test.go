package flow

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestParseAddress: every -i/-R flag goes through ParseAddress. Each good
// form parses to its Address and formats back to its canonical string;
// each bad one fails with an error that quotes the address and names what
// is wrong.
func TestParseAddress(t *testing.T) {
	const (
		v6       = "IPv6 is not supported: STK's wire format carries IPv4 addresses only"
		notIPv4  = "is not an IPv4 address (host names are resolved by ResolveAddress, not here)"
		badPort  = "(want 0-65535)"
		tooMany  = "too many ':' (want [protocol:]ip[:port])"
		unknown  = "(want tcp, udp, rawudp, multicast, tls or lookup)"
		noLookup = "lookup needs a name, as in lookup:monitor"
		twoOf    = "(want one: [tcp|udp|rawudp|multicast|tls:]ip[:port]; tls: is TCP inside TLS)"
	)
	for _, tc := range []struct {
		in   string
		want Address
		str  string // canonical form (String); "" for errors
		err  string // what the error must contain; "" for good forms
	}{
		// Defaults: TCP, no host, no port (filled by WithDefaults).
		{in: "", want: Address{Protocol: TCP}, str: "tcp:"},
		{in: ":", want: Address{Protocol: TCP}, str: "tcp:"},
		{in: "tcp", want: Address{Protocol: TCP}, str: "tcp:"},
		{in: "tcp:", want: Address{Protocol: TCP}, str: "tcp:"},
		{in: ":20002", want: Address{Protocol: TCP, Port: 20002}, str: "tcp::20002"},
		// Host and port, port missing or empty.
		{in: "127.0.0.1", want: Address{Protocol: TCP, Host: "127.0.0.1"}, str: "tcp:127.0.0.1"},
		{in: "127.0.0.1:", want: Address{Protocol: TCP, Host: "127.0.0.1"}, str: "tcp:127.0.0.1"},
		{in: "127.0.0.1:20002", want: Address{Protocol: TCP, Host: "127.0.0.1", Port: 20002}, str: "tcp:127.0.0.1:20002"},
		{in: "0.0.0.0:0", want: Address{Protocol: TCP, Host: "0.0.0.0"}, str: "tcp:0.0.0.0"},
		{in: "255.255.255.255:65535", want: Address{Protocol: TCP, Host: "255.255.255.255", Port: 65535}, str: "tcp:255.255.255.255:65535"},
		// Protocols, in any case.
		{in: "TCP:1.2.3.4:5", want: Address{Protocol: TCP, Host: "1.2.3.4", Port: 5}, str: "tcp:1.2.3.4:5"},
		{in: "tcp::20002", want: Address{Protocol: TCP, Port: 20002}, str: "tcp::20002"},
		{in: "udp:", want: Address{Protocol: UDP}, str: "udp:"},
		{in: "udp:10.0.0.1:9", want: Address{Protocol: UDP, Host: "10.0.0.1", Port: 9}, str: "udp:10.0.0.1:9"},
		{in: "UDP:10.0.0.1", want: Address{Protocol: UDP, Host: "10.0.0.1"}, str: "udp:10.0.0.1"},
		{in: "RawUDP:10.0.0.1", want: Address{Protocol: RawUDP, Host: "10.0.0.1"}, str: "rawudp:10.0.0.1"},
		{in: "rawudp:10.0.0.1:7", want: Address{Protocol: RawUDP, Host: "10.0.0.1", Port: 7}, str: "rawudp:10.0.0.1:7"},
		{in: "multicast", want: Address{Protocol: Multicast}, str: "multicast:"},
		{in: "multicast::5000", want: Address{Protocol: Multicast, Port: 5000}, str: "multicast::5000"},
		{in: "multicast:224.10.10.20:20003", want: Address{Protocol: Multicast, Host: "224.10.10.20", Port: 20003}, str: "multicast:224.10.10.20:20003"},
		{in: "multicast:239.1.2.3", want: Address{Protocol: Multicast, Host: "239.1.2.3"}, str: "multicast:239.1.2.3"},
		// tls: is TCP with TLS.
		{in: "tls:127.0.0.1:20012", want: Address{Protocol: TCP, Host: "127.0.0.1", Port: 20012, TLS: true}, str: "tls:127.0.0.1:20012"},
		{in: "TLS:10.0.0.1", want: Address{Protocol: TCP, Host: "10.0.0.1", TLS: true}, str: "tls:10.0.0.1"},
		{in: "tls::20012", want: Address{Protocol: TCP, Port: 20012, TLS: true}, str: "tls::20012"},
		{in: "tls", want: Address{Protocol: TCP, TLS: true}, str: "tls:"},
		// lookup: takes the rest as the name, colons and spaces included.
		{in: "lookup:monitor", want: Address{Lookup: "monitor"}, str: "lookup:monitor"},
		{in: "LOOKUP:monitor", want: Address{Lookup: "monitor"}, str: "lookup:monitor"},
		{in: "lookup:my name:x", want: Address{Lookup: "my name:x"}, str: "lookup:my name:x"},
		{in: "lookup:::1", want: Address{Lookup: "::1"}, str: "lookup:::1"},

		// IPv6, in every place it can be written.
		{in: "[::1]:20002", err: `address "[::1]:20002": ` + v6},
		{in: "::1", err: v6},
		{in: "::", err: v6},
		{in: "2001:db8::1", err: v6},
		{in: "::ffff:1.2.3.4", err: v6},
		{in: "tcp:::1", err: v6},
		{in: "udp:fe80::1:5000", err: v6},
		{in: "tls:[::1]:1", err: v6},
		{in: "multicast:ff02::1:5000", err: v6},
		// Ports.
		{in: "1.2.3.4:abc", err: `bad port "abc" ` + badPort},
		{in: "1.2.3.4:70000", err: `bad port "70000"`},
		{in: "1.2.3.4:65536", err: `bad port "65536"`},
		{in: "1.2.3.4:-1", err: `bad port "-1"`},
		{in: "1.2.3.4:+5", err: `bad port "+5"`},
		{in: "1.2.3.4:0x10", err: `bad port "0x10"`},
		{in: "1.2.3.4: 80", err: `bad port " 80"`},
		// Too many parts, unknown protocols.
		{in: "1.2.3.4:5:6", err: tooMany},
		{in: "tcp:1.2.3.4:5:6", err: tooMany},
		{in: "foo:1.2.3.4", err: `unknown protocol "foo" ` + unknown},
		{in: "foo:1.2.3.4:80", err: `unknown protocol "foo"`},
		{in: "http://1.2.3.4", err: `unknown protocol "http"`},
		// Two transports: the second is not a host, the host not a port.
		{in: "tcp:tls:1.2.3.4", err: `two transports, "tcp" and "tls" ` + twoOf},
		{in: "TLS:TCP:1.2.3.4:80", err: `two transports, "tls" and "tcp"`},
		{in: "udp:multicast", err: `two transports, "udp" and "multicast"`},
		{in: "tcp:lookup:monitor", err: `two transports, "tcp" and "lookup"`},
		// Host names (ResolveAddress takes them) and garbage.
		{in: "localhost:20002", err: `"localhost" ` + notIPv4},
		{in: "tcp:localhost", err: `"localhost" ` + notIPv4},
		{in: "1.2.3", err: `"1.2.3" ` + notIPv4},
		{in: "1.2.3.4.5", err: `"1.2.3.4.5" ` + notIPv4},
		{in: "01.2.3.4", err: `"01.2.3.4" ` + notIPv4},
		{in: "udp:256.1.1.1:9", err: `"256.1.1.1" ` + notIPv4},
		{in: "1.2.3.4 :5", err: `"1.2.3.4 " ` + notIPv4},
		{in: " ", err: `" " ` + notIPv4},
		{in: "!!", err: `"!!" ` + notIPv4},
		{in: "%", err: `"%" ` + notIPv4},
		// lookup without a name.
		{in: "lookup:", err: noLookup},
		{in: "lookup", err: noLookup},
	} {
		got, err := ParseAddress(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) {
				t.Errorf("ParseAddress(%q) = %+v, %v; want an error quoting the address and containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseAddress(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if s := got.String(); s != tc.str {
			t.Errorf("ParseAddress(%q).String() = %q, want %q", tc.in, s, tc.str)
		} else if again, err := ParseAddress(s); err != nil || again != got {
			t.Errorf("ParseAddress(%q) = %+v, %v: String does not parse back to %+v", s, again, err, got)
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
	if _, err := a.AddrPort(); err == nil || !strings.Contains(err.Error(), "TLS is not supported here") {
		t.Fatalf("AddrPort of a tls: address: %v, want a refusal", err)
	}
	if ap, err := a.HostAddrPort(); err != nil || ap.String() != "127.0.0.1:20012" {
		t.Fatalf("HostAddrPort: %v, %v", ap, err)
	}
}
