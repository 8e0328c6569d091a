package httpd

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/smartbeat"
	"github.com/stk-go/stk/stepbus"
)

// metricValue scrapes /metrics and returns one sample.
func metricValue(t *testing.T, base, name string, labels ...string) float64 {
	t.Helper()
	return scrape(t, get(t, base+"/metrics").body)(name, labels...)
}

// TestSlowStepStreamsAreCounted: an SSE client and a WebSocket client
// that never read are cut when a write does not complete within
// WriteTimeout, and stk_http_step_streams_cut_total counts each (it
// stayed 0: only a client that read again after the bus dropped its
// STEPs was counted). The subscription queue is larger than what is
// published, so the bus never drops: the write timeout alone cuts them.
func TestSlowStepStreamsAreCounted(t *testing.T) {
	leakcheck.Check(t)
	_, base, bus := newStepTest(t, Config{ClientBuffer: 100000, WriteTimeout: 300 * time.Millisecond}, stepbus.Config{History: 16})
	u, _ := url.Parse(base)

	// SSE: a raw connection that sends its request and never reads.
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /api/v1/steps/stream HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host)
	// WebSocket: connected, never read.
	if _, _, err := dialWS(t, base, "", nil); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "both subscriptions", func() bool { return bus.Stats().Subscribers == 2 })

	cut := func(transport string) float64 {
		return metricValue(t, base, "stk_http_step_streams_cut_total", "transport", transport)
	}
	if a, b := cut("sse"), cut("websocket"); a != 0 || b != 0 {
		t.Fatalf("cut before anything happened: sse %v, websocket %v", a, b)
	}
	deadline := time.Now().Add(20 * time.Second)
	n := 0
	for cut("sse") < 1 || cut("websocket") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d big STEPs: cut sse %v, websocket %v; subscribers %d", n, cut("sse"), cut("websocket"), bus.Stats().Subscribers)
		}
		for range 10 {
			mustPublish(t, bus, bigStep(n))
			n++
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := bus.Stats().Dropped; d != 0 {
		t.Errorf("the bus dropped %d STEPs: the cut was not the write timeout's", d)
	}
	if a, b := cut("sse"), cut("websocket"); a != 1 || b != 1 {
		t.Errorf("cut sse %v, websocket %v; want 1 each", a, b)
	}
	testutil.WaitFor(t, 10*time.Second, "the subscriptions to end", func() bool { return bus.Stats().Subscribers == 0 })
	t.Logf("%d big STEPs published before both stuck clients were cut", n)
}

// TestSlowEventStreamIsCounted: a monitor event-stream client that never
// reads is cut when a write does not complete within WriteTimeout, and
// stk_http_event_streams_dropped_total counts it (once, whether the
// handler's write or the hub's sweep noticed first).
func TestSlowEventStreamIsCounted(t *testing.T) {
	leakcheck.Check(t)
	mon := newFakeMonitor(1 << 16)
	_, ts := newTest(t, Config{Monitor: mon, ClientBuffer: 1 << 20, WriteTimeout: 300 * time.Millisecond})
	u, _ := url.Parse(ts.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /api/v1/events?beats=all HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host)
	testutil.WaitFor(t, 10*time.Second, "the event stream", func() bool { return metricValue(t, ts.URL, "stk_http_event_streams") == 1 })

	name := strings.Repeat("n", 4000) // the fake monitor takes any name: big events fill the socket sooner
	deadline := time.Now().Add(20 * time.Second)
	n := 0
	for metricValue(t, ts.URL, "stk_http_event_streams_dropped_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d events the stuck client is not counted", n)
		}
		for range 50 {
			mon.create(name, "", smartbeat.Running, "127.0.0.1:40000")
			n++
		}
		time.Sleep(20 * time.Millisecond)
	}
	testutil.WaitFor(t, 10*time.Second, "the stream to end", func() bool { return metricValue(t, ts.URL, "stk_http_event_streams") == 0 })
	if got := metricValue(t, ts.URL, "stk_http_event_streams_dropped_total"); got != 1 {
		t.Errorf("dropped %v, want 1", got)
	}
	t.Logf("%d events before the stuck client was cut", n)
}
