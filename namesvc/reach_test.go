package namesvc

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/syncbuf"
)

func TestLocate(t *testing.T) {
	for _, c := range []struct {
		ip   string
		want ServerLocation
	}{
		{"127.0.0.1", ServerLoopback},
		{"127.3.2.1", ServerLoopback},
		{"0.0.0.0", ServerLoopback},
		{"::1", ServerLoopback},
		{"192.0.2.255", ServerOtherHost}, // TEST-NET-1 broadcast: no host holds it
	} {
		if got := locate(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("locate(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
	if ip, ok := flow.PrimaryIP(); ok {
		if got := locate(ip); got != ServerLocalAddr {
			t.Errorf("locate(%v), this host's primary address, = %v, want %v", ip, got, ServerLocalAddr)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	ep := func(s string) Endpoint { return Endpoint{Protocol: "tcp", Addr: netip.MustParseAddrPort(s)} }
	for _, c := range []struct {
		addrs []Endpoint
		want  bool
	}{
		{nil, false},
		{[]Endpoint{ep("127.0.0.1:1")}, true},
		{[]Endpoint{ep("0.0.0.0:1")}, true},
		{[]Endpoint{ep("127.0.0.1:1"), ep("0.0.0.0:2")}, true},
		{[]Endpoint{ep("127.0.0.1:1"), ep("10.0.0.1:2")}, false},
		{[]Endpoint{ep("224.10.10.20:1")}, false},
	} {
		if got := loopbackOnly(&Info{Name: "x", Addresses: c.addrs}); got != c.want {
			t.Errorf("loopbackOnly(%v) = %v, want %v", c.addrs, got, c.want)
		}
	}
}

// TestLoopbackAnswerWarning: a client that reaches the name server at a
// network address warns once per name when a lookup or a subscription push
// carries only loopback addresses; a client on loopback does not, and
// neither does an answer with a reachable address.
func TestLoopbackAnswerWarning(t *testing.T) {
	ip, ok := flow.PrimaryIP()
	if !ok {
		t.Skip("this host has no IPv4 address beyond loopback: the client cannot reach the name server at a network address")
	}
	ts := startServer(t, ServerConfig{}, "0.0.0.0:0", "")
	networkAddr := fmt.Sprintf("tcp:%v:%d", ip, ts.tcpAddr.Port())

	reg := dial(t, ts.tcp(), ClientOptions{})
	register(t, reg, Info{Name: "local-only", Addresses: []Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:29312")}}})
	register(t, reg, Info{Name: "reachable", Addresses: []Endpoint{{Protocol: "tcp", Addr: netip.AddrPortFrom(ip, 29313)}}})

	var remoteLog, localLog syncbuf.Buffer
	remote := dial(t, networkAddr, ClientOptions{Logger: slog.New(slog.NewTextHandler(&remoteLog, nil))})
	local := dial(t, ts.tcp(), ClientOptions{Logger: slog.New(slog.NewTextHandler(&localLog, nil))})
	if remote.ServerLocation() != ServerLocalAddr || remote.ServerAddr().Addr() != ip || local.ServerLocation() != ServerLoopback {
		t.Fatalf("locations: %v at %v, %v at %v", remote.ServerLocation(), remote.ServerAddr(), local.ServerLocation(), local.ServerAddr())
	}

	var remotePushes chan Info
	for _, c := range []*Client{remote, local} {
		for range 2 {
			if got := lookupAll(t, c, "local-only", ""); len(got) != 1 {
				t.Fatalf("lookup: %d answers", len(got))
			}
			if got := lookupAll(t, c, "reachable", ""); len(got) != 1 {
				t.Fatalf("lookup: %d answers", len(got))
			}
		}
		pushed := make(chan Info, 4)
		if _, err := c.Subscribe("local-only", SubscribeOptions{}, func(i Info) { pushed <- i }); err != nil {
			t.Fatal(err)
		}
		recv(t, pushed, "the subscription's answer")
		if c == remote {
			remotePushes = pushed
		}
	}
	want := `name \"local-only\" is registered at 127.0.0.1:29312 only, but the name server is reached at ` +
		strings.TrimPrefix(networkAddr, "tcp:") + `, a network address, so the registrant may be on another host: ` +
		`the publisher must listen on an address this host can reach; start it with -B 0.0.0.0 or -i tcp:<its IP>:<port>`
	out := remoteLog.String()
	if n := strings.Count(out, "level=WARN"); n != 1 || !strings.Contains(out, want) {
		t.Errorf("client at %s logged %d warnings, want 1 containing\n%s\ngot:\n%s", networkAddr, n, want, out)
	}
	if strings.Contains(localLog.String(), "level=WARN") {
		t.Errorf("client on loopback warned:\n%s", localLog.String())
	}

	// A push after the first warning (a new registration of the name)
	// does not repeat it.
	// The warning is logged before the callback runs.
	register(t, reg, Info{Name: "local-only", Addresses: []Endpoint{{Protocol: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:29314")}}})
	if got := recv(t, remotePushes, "the push of the new registration"); got.Addresses[0].Addr.Port() != 29314 {
		t.Fatalf("push: %v", got.String())
	}
	if n := strings.Count(remoteLog.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings after a second registration, want 1:\n%s", n, remoteLog.String())
	}
}

func TestServerLocationDescribe(t *testing.T) {
	ap := netip.MustParseAddrPort("10.99.0.2:20002")
	if got, want := ServerOtherHost.Describe(ap), "at 10.99.0.2:20002 is on another host"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
}
