package smartbeat

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"

	"github.com/stk-go/stk/internal/syncbuf"
	"github.com/stk-go/stk/internal/testutil"
)

// startNames starts a name server on bind ("ip:0") and returns its port.
func startNames(t *testing.T, bind string) uint16 {
	t.Helper()
	ns, err := namesvc.NewServer(namesvc.ServerConfig{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	ap, err := ns.ServeTCP(bind)
	if err != nil {
		t.Fatal(err)
	}
	return ap.Port()
}

// TestMonitorAdvertisedAddress: a listener on 0.0.0.0 is registered at
// AdvertiseHost, else at flow.AdvertiseIP toward the name server, and
// logged at Info; a listener on a specific IP keeps it.
func TestMonitorAdvertisedAddress(t *testing.T) {
	port := startNames(t, "0.0.0.0:0")
	toward := netip.MustParseAddr("127.0.0.1")
	if ip, ok := flow.PrimaryIP(); ok {
		toward = ip // the name server reached at this host's network address
	}
	nsAddr := fmt.Sprintf("tcp:%v:%d", toward, port)
	for _, c := range []struct {
		bind, advertise string
		wantIP          string
	}{
		{"0.0.0.0:0", "", flow.AdvertiseIP(netip.IPv4Unspecified(), toward).String()},
		{"0.0.0.0:0", "10.1.2.3", "10.1.2.3"},
		{"127.0.0.1:0", "10.1.2.3", "127.0.0.1"},
	} {
		var logs syncbuf.Buffer
		// A name per case: the previous monitor's registration lingers.
		name := fmt.Sprintf("monitor-%s-%s", c.bind, c.advertise)
		m, err := NewMonitor(MonitorConfig{Name: name, NameServerAddr: nsAddr, AdvertiseHost: c.advertise, CheckInterval: -1,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		tcp, err := m.ServeTCP(c.bind)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("tcp:%s:%d", c.wantIP, tcp.Port())
		if got := m.Stats().Listeners; len(got) != 1 || got[0] != want {
			t.Errorf("bind %s, AdvertiseHost %q: listeners %v, want [%s]", c.bind, c.advertise, got, want)
		}
		c2, err := namesvc.Dial(nsAddr, namesvc.ClientOptions{Logger: testutil.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 10*time.Second, "the registration", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			info, err := c2.LookupOnce(ctx, name, namesvc.LookupOptions{})
			s, _ := info.MetaString(seq.UTMonitorTCP)
			return err == nil && s == want
		})

		c2.Close()
		unspecified := strings.HasPrefix(c.bind, "0.0.0.0")
		logged := strings.Contains(logs.String(), "level=INFO msg=\"monitor listener on every interface: registering an address other hosts can reach\" listen=0.0.0.0:") &&
			strings.Contains(logs.String(), "registered="+strings.TrimPrefix(want, "tcp:"))
		if logged != unspecified {
			t.Errorf("bind %s: logged the advertised address: %v, want %v:\n%s", c.bind, logged, unspecified, logs.String())
		}
		m.Close()
	}
}

// TestLookupMonitorWarnsLoopback: a service that finds the monitor through
// a name server reached at a network address, registered at 127.0.0.1 or
// 0.0.0.0, warns (once per name); through a loopback name server, or at a
// reachable address, it does not.
func TestLookupMonitorWarnsLoopback(t *testing.T) {
	ip, ok := flow.PrimaryIP()
	if !ok {
		t.Skip("this host has no IPv4 address beyond loopback: the service cannot reach the name server at a network address")
	}
	port := startNames(t, "0.0.0.0:0")
	network := fmt.Sprintf("tcp:%v:%d", ip, port)
	loopback := fmt.Sprintf("tcp:127.0.0.1:%d", port)
	reg, err := namesvc.Dial(loopback, namesvc.ClientOptions{Logger: testutil.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	// A name per case: the warning is once per name server and name.
	suffix := fmt.Sprintf("-%d", time.Now().UnixNano())
	for name, addr := range map[string]string{"mon-lo": "tcp:127.0.0.1:1", "mon-any": "tcp:0.0.0.0:1", "mon-ok": fmt.Sprintf("udp:%v:1", ip)} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := reg.Register(ctx, namesvc.Info{Name: name + suffix, Meta: []seq.Element{meta(seq.UTMonitorTCP, addr)}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The monitoring flows lead nowhere: do not wait for them to deliver.
	snd := NewSender(SenderOptions{Flow: flow.Options{CloseTimeout: time.Millisecond}})
	defer snd.Close()
	for _, c := range []struct {
		ns, name string
		warn     string // "" for none
	}{
		{network, "mon-lo", `monitor \"mon-lo` + suffix + `\" is registered at tcp:127.0.0.1:1, but the name server is reached at ` + strings.TrimPrefix(network, "tcp:")},
		{network, "mon-lo", ""}, // warned already
		{network, "mon-any", `is registered at tcp:0.0.0.0:1`},
		{network, "mon-ok", ""},
		{loopback, "mon-any", ""},
	} {
		var logs syncbuf.Buffer
		svc, err := NewService("svc", Options{Sender: snd, Monitor: "lookup:" + c.name + suffix, NameServerAddr: c.ns,
			ConnectWait: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		svc.crash() // sends nothing more; its flow to nowhere closes
		out := logs.String()
		if c.warn == "" && strings.Contains(out, "level=WARN") {
			t.Errorf("%s through %s: unexpected warning:\n%s", c.name, c.ns, out)
		}
		if c.warn != "" && (strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, c.warn) || !strings.Contains(out, "--advertise <its IP>")) {
			t.Errorf("%s through %s: want one warning containing\n%s\ngot:\n%s", c.name, c.ns, c.warn, out)
		}
	}
}
