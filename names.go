package stk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/stk-go/stk/namesvc"
)

// WaitConnected waits until the Env has a connection to its name server, or
// ctx ends (then with an error that says which server did not answer).
func (e *Env) WaitConnected(ctx context.Context) error {
	if e.client.Connected() {
		return nil
	}
	if err := e.client.WaitConnected(ctx); err != nil {
		return fmt.Errorf("stk: no connection to the name server at %s (%s): %w", e.nsString, namesHint, err)
	}
	return nil
}

// Registration is a name registered by Env.Register (or by a publisher).
// Close takes the name off the name server.
type Registration struct {
	env    *Env
	client *namesvc.Client
	info   namesvc.Info
	keep   bool // Close leaves the registration for its linger
	once   sync.Once
	err    error
}

// Info returns what was registered (Group filled in).
func (r *Registration) Info() namesvc.Info { return r.info }

// Register registers info with the name server and waits until the server
// confirms it or ctx ends. info.Group "" means Options.Group.
//
// Each registration has a connection to the name server of its own, so that
// Close removes the name at once and a crash leaves it for info.Linger only
// (STK has no unregister message: a name stays while its registrant's
// connection is open, then for its linger). It is registered again after a
// reconnect or a name-server restart. When ctx ends first, the error says
// so and the connection closes: a registration the server did receive
// lingers for info.Linger.
func (e *Env) Register(ctx context.Context, info namesvc.Info) (*Registration, error) {
	r, err := e.register(ctx, info)
	if err != nil {
		return nil, err
	}
	if !e.adopt(r) {
		r.Close()
		return nil, fmt.Errorf("stk: register %q: %w", info.Name, ErrClosed)
	}
	return r, nil
}

// register is Register without the Env's bookkeeping; the publisher's is
// closed with the publisher.
func (e *Env) register(ctx context.Context, info namesvc.Info) (*Registration, error) {
	if info.Group == "" {
		info.Group = e.opts.Group
	}
	if info.Name == "" || len(info.Name) > namesvc.MaxNameLen {
		return nil, fmt.Errorf("stk: register %q: a name has 1 to %d bytes", info.Name, namesvc.MaxNameLen)
	}
	c, err := e.dial()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := c.Register(ctx, info); err != nil {
		c.Close()
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return nil, notConfirmed(e.nsString, info.Name, time.Since(start).Round(time.Millisecond), err)
		}
		return nil, fmt.Errorf("stk: register %q: %w", info.Name, err)
	}
	return &Registration{env: e, client: c, info: info}, nil
}

// Close removes the registration from the name server: it registers it
// again with linger 0 (when connected; waiting at most a second) and closes
// its connection, after which the server drops it.
func (r *Registration) Close() error {
	r.once.Do(func() {
		r.env.forget(r)
		if r.client.Connected() && !r.keep {
			info := r.info
			info.Linger = 0
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := r.client.Register(ctx, info); err != nil {
				r.env.log.Debug("stk: could not cut the linger of a registration before closing it", "name", info.Name, "err", err)
			}
			cancel()
		}
		r.err = r.client.Close()
	})
	return r.err
}

// Lookup returns every registration of name in Options.Group, in
// registration order; none is not an error. Against stkd the answer comes
// as soon as the server has sent the last registration; against a C name
// server the lookup waits for its expiration (1 s). ctx bounds the wait.
func (e *Env) Lookup(ctx context.Context, name string) ([]namesvc.Info, error) {
	infos, err := e.client.LookupAll(ctx, name, namesvc.LookupOptions{})
	if err != nil {
		return infos, fmt.Errorf("stk: look up %q at the name server %s: %w", name, e.nsString, err)
	}
	return infos, nil
}

// watch is the io.Closer of WatchName.
type watch struct {
	env  *Env
	sub  *namesvc.Subscription
	once sync.Once
}

func (w *watch) Close() error {
	w.once.Do(func() {
		w.env.forget(w)
		w.sub.Unsubscribe()
	})
	return nil
}

// WatchName calls fn with every registration of name in Options.Group:
// those that exist now, then each new one as it is made (a publisher
// starting, restarting, or registering again after a name-server restart,
// so the same registration may come more than once). It is not told when a
// registration goes: Subscribe is (through stkd's removal notices), and
// namesvc.SubscribeOptions.OnRemoved gives them to a caller of namesvc. fn runs on the name-server client's read loop: it
// must not block, nor call Env.Close. Close the result to stop.
func (e *Env) WatchName(name string, fn func(namesvc.Info)) (io.Closer, error) {
	if fn == nil {
		return nil, errors.New("stk: WatchName: fn is nil")
	}
	sub, err := e.client.Subscribe(name, namesvc.SubscribeOptions{}, fn)
	if err != nil {
		return nil, fmt.Errorf("stk: watch %q: %w", name, err)
	}
	w := &watch{env: e, sub: sub}
	if !e.adopt(w) {
		sub.Unsubscribe()
		return nil, fmt.Errorf("stk: watch %q: %w", name, ErrClosed)
	}
	return w, nil
}
