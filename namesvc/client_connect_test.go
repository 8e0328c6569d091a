package namesvc

import (
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
)

// A Register that runs while the client is coming up is sent once: either
// by itself or with the registrations sent on connect, never both. (With
// the connection marked up before the list was taken, it was sent twice,
// and a policy refusing it counted two refusals: TestPolicyFirstOwner
// failed that way once in CI.)
func TestRegisterWhileConnectingSentOnce(t *testing.T) {
	ts := startServer(t, ServerConfig{}, "", "")
	registered := make(chan error, 1)
	dialed := make(chan *Client, 1)
	onConnectHook = func() {
		// The keep-alive is out and the connection not yet marked up: a
		// Register here must not send, and must be in what onConnect
		// sends next.
		c := <-dialed
		go func() { registered <- c.Register(ctxT(t), regAt("svc", "127.0.0.1:7001")) }()
		testutil.WaitFor(t, 10*time.Second, "the registration remembered", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.regs) == 1
		})
		time.Sleep(20 * time.Millisecond) // let a Register that would send itself do so
	}
	c := dial(t, ts.tcp(), ClientOptions{})
	dialed <- c
	if err := <-registered; err != nil {
		t.Fatal(err)
	}
	lookupAll(t, c, "svc", "") // requests are handled in order: a second register would be counted by now
	c.Close()
	onConnectHook = nil
	if n := ts.Stats().Registers; n != 1 {
		t.Fatalf("the server handled %d register requests, want 1", n)
	}
}
