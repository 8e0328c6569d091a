package flow

import (
	"testing"
	"time"

	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/internal/testutil"
)

// TestTLSRefusalStaysVisible: under TLS 1.3 a client whose certificate the
// server refuses completes its side of each handshake and is refused a
// moment later, over and over. Between the two, DialError must still say
// why it keeps failing: callers that time out (a registration, the C
// binding) report it, and a nil there read as "is stkd running?".
func TestTLSRefusalStaysVisible(t *testing.T) {
	leakcheck.Check(t)
	ts := newTLSSetup(t)
	srv := listenTLS(t, Options{TLS: ts.serverTLS(t, true)})
	c := dial(t, srv.LocalAddr().String(), Options{TLS: clientTLS(t, ts.ca, ts.wrongClient),
		ReconnectMin: time.Millisecond, ReconnectMax: 2 * time.Millisecond})
	testutil.WaitFor(t, 10*time.Second, "the first refusal", func() bool { return isHandshakeErr(c.DialError()) })
	before := srv.Stats().HandshakeErrors
	for srv.Stats().HandshakeErrors < before+20 {
		if err := c.DialError(); !isHandshakeErr(err) {
			t.Fatalf("DialError() = %v between refusals (connected: %v); want the last refusal", err, c.Connected())
		}
	}
}
