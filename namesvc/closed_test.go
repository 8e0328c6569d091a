package namesvc

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestClosedErrors: a closed Client answers with ErrClosed and a closed
// Server's Serve methods with ErrServerClosed; callers test them with
// errors.Is.
func TestClosedErrors(t *testing.T) {
	ts := startServer(t, ServerConfig{}, "", "")
	c := dial(t, ts.tcp(), ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	register(t, c, regAt("before.close", "127.0.0.1:7001"))
	c.Close()
	if err := c.Register(ctx, regAt("after.close", "127.0.0.1:7002")); !errors.Is(err, ErrClosed) {
		t.Errorf("Register after Close: %v, want ErrClosed", err)
	}
	if _, err := c.LookupAll(ctx, "before.close", LookupOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("LookupAll after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Subscribe("before.close", SubscribeOptions{}, func(Info) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}

	ts.Close()
	if _, err := ts.ServeTCP("127.0.0.1:0"); !errors.Is(err, ErrServerClosed) {
		t.Errorf("ServeTCP after Close: %v, want ErrServerClosed", err)
	}
	if _, err := ts.ServeUDP("127.0.0.1:0"); !errors.Is(err, ErrServerClosed) {
		t.Errorf("ServeUDP after Close: %v, want ErrServerClosed", err)
	}
}
