package namesvc

import (
	"fmt"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
)

// TestUDPRegistrationLingers: a UDP registrant that goes silent is treated
// like a TCP client that disconnected: at the end of the server's UDPTTL
// its registration lingers for its own linger before it goes (it used to
// go at the TTL, the linger ignored). Real client, real clock, real
// sockets; TTL 300 ms and linger 1 s keep it short.
func TestUDPRegistrationLingers(t *testing.T) {
	const ttl, linger = 300 * time.Millisecond, time.Second
	ts := startServer(t, ServerConfig{UDPTTL: ttl, GCInterval: 20 * time.Millisecond, Now: time.Now}, "", "")
	reg := dial(t, ts.udp(), ClientOptions{Keepalive: 20 * time.Millisecond})
	q := dial(t, ts.tcp(), ClientOptions{})
	info := regInfo("udp_linger")
	info.Linger = linger
	register(t, reg, info)

	// Keep-alives keep it alive well past the TTL.
	time.Sleep(3 * ttl) // not a wait for a condition: the time that must pass
	if got := lookupAll(t, q, "udp_linger", ""); len(got) != 1 {
		t.Fatalf("%d answers after 3 TTLs of keep-alives, want 1", len(got))
	}
	reg.Close() // no more keep-alives: silent from now on
	silent := time.Now()

	// The collector ends the silent source after the TTL; the name
	// lingers and is still answered.
	testutil.WaitForf(t, waitLimit, func() bool {
		e := ts.Names()
		if len(e) == 0 {
			t.Fatalf("registration gone %v after its registrant went silent (TTL %v, linger %v): the linger was not applied", time.Since(silent), ttl, linger)
		}
		return len(e) == 1 && e[0].Lingering && ts.Stats().Lingering == 1
	}, func() string { return fmt.Sprintf("registration not lingering: %+v", ts.Names()) })
	if got := lookupAll(t, q, "udp_linger", ""); len(got) != 1 {
		t.Fatalf("%d answers while lingering, want 1", len(got))
	}

	// It goes at TTL + linger after the last keep-alive (sent at most
	// 20 ms before Close).
	testutil.WaitForf(t, ttl+linger+waitLimit, func() bool { return len(lookupAll(t, q, "udp_linger", "")) == 0 },
		func() string {
			return fmt.Sprintf("still answered %v after its registrant went silent", time.Since(silent))
		})
	gone := time.Since(silent)
	if min := ttl + linger - 50*time.Millisecond; gone < min {
		t.Fatalf("gone %v after its registrant went silent, want at least TTL + linger (%v)", gone, min)
	}
	t.Logf("gone %v after the registrant went silent (TTL %v + linger %v)", gone.Round(time.Millisecond), ttl, linger)
	testutil.WaitForf(t, waitLimit, func() bool { return ts.Stats().Registrations == 0 },
		func() string {
			return fmt.Sprintf("the collector did not remove the expired registration: %+v", ts.Stats())
		})
}
