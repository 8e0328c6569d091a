package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"

	"github.com/stk-go/stk/internal/syncbuf"
)

// TestAdvertise: with listeners on 0.0.0.0, the monitor and the STEP feed
// register --advertise, or by default flow.AdvertiseIP toward the name
// server (also on 0.0.0.0: the host's primary address), never 0.0.0.0;
// stkd logs the advertised address of each such listener. A listener on a
// specific IP keeps it.
func TestAdvertise(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		advertise, bind string
		want            string // registered IP
	}{
		{"", "0.0.0.0:0", flow.AdvertiseIP(netip.IPv4Unspecified(), netip.IPv4Unspecified()).String()},
		{"10.1.2.3", "0.0.0.0:0", "10.1.2.3"},
		{"10.1.2.3", "127.0.0.1:0", "127.0.0.1"},
	} {
		c := testConfig("")
		c.namesTCP, c.monTCP, c.stepsFeed, c.http = tc.bind, tc.bind, tc.bind, ""
		c.advertise = tc.advertise
		var logs syncbuf.Buffer
		d, err := start(c, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ns, err := namesvc.Dial(fmt.Sprintf("tcp:127.0.0.1:%d", netip.MustParseAddrPort(d.namesTCP).Port()), namesvc.ClientOptions{Logger: testutil.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		lookup := func(name string) namesvc.Info {
			var info namesvc.Info
			testutil.WaitFor(t, 10*time.Second, name+" registered", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				info, err = ns.LookupOnce(ctx, name, namesvc.LookupOptions{})
				return err == nil
			})

			return info
		}
		port := func(addr string) uint16 { return netip.MustParseAddrPort(addr).Port() }
		monInfo := lookup("monitor")
		mon, _ := monInfo.MetaString(seq.UTMonitorTCP)
		if want := fmt.Sprintf("tcp:%s:%d", tc.want, port(d.monTCP)); mon != want {
			t.Errorf("--advertise %q, monitor on %s: registered %s, want %s", tc.advertise, d.monTCP, mon, want)
		}
		feed := lookup("steps")
		if want := fmt.Sprintf("tcp:%s:%d", tc.want, port(d.stepsFeed)); len(feed.Addresses) != 1 || feed.Addresses[0].String() != want {
			t.Errorf("--advertise %q, feed on %s: registered %v, want %s", tc.advertise, d.stepsFeed, feed.Addresses, want)
		}
		ns.Close()
		d.close()
		out := logs.String()
		for _, l := range []struct{ name, addr string }{{"names-tcp", d.namesTCP}, {"monitor-tcp", d.monTCP}, {"steps-feed", d.stepsFeed}} {
			line := fmt.Sprintf("listener=%s listen=%s advertised=%s:%d", l.name, l.addr, tc.want, port(l.addr))
			if strings.Contains(out, line) != strings.HasPrefix(tc.bind, "0.0.0.0") {
				t.Errorf("--advertise %q, listeners on %s: logged %q: %v\n%s", tc.advertise, tc.bind, line, !strings.HasPrefix(tc.bind, "0.0.0.0"), out)
			}
		}
	}
	for _, bad := range []string{"nonsense", "0.0.0.0", "224.1.1.1", "::1"} {
		c := testConfig("")
		c.advertise = bad
		if d, err := start(c, testutil.Discard()); err == nil {
			d.close()
			t.Errorf("--advertise %q accepted", bad)
		} else if !strings.Contains(err.Error(), "--advertise") {
			t.Errorf("--advertise %q: error %q does not name the flag", bad, err)
		}
	}
}
