package stk

import (
	"fmt"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/smartbeat"
)

// service closes a smartbeat service with its Env.
type service struct {
	env *Env
	svc *smartbeat.Service
}

func (s *service) Close() error {
	s.env.forget(s)
	return s.svc.Close()
}

// Service starts a monitored service of this program (see package
// smartbeat): it sends CREATE to the monitor, then a smartbeat every period;
// SetState and SetCheckpoint report progress, Close sends DESTROY (Env.Close
// does it for services still open).
//
// Fields of opts left zero take the Env's: Monitor defaults to
// DefaultMonitor, "lookup:monitor", the monitor registered with the Env's
// name server (stkd's); NameServer to the Env's client; Sender to one of
// the Env's, closed with it, which dials a "tls:ip:port" Monitor with
// Options.TLS (for mutual TLS, its client certificate); Logger to
// Options.Logger. The lookup waits at
// most opts.LookupTimeout (smartbeat.DefaultLookupTimeout); when it finds no
// monitor, Service fails and says so.
func (e *Env) Service(name string, opts smartbeat.Options) (*smartbeat.Service, error) {
	if opts.Monitor == "" && opts.MonitorFlow == nil {
		opts.Monitor = DefaultMonitor
	}
	if opts.NameServer == nil {
		opts.NameServer = e.client
	}
	if opts.Logger == nil {
		opts.Logger = e.log
	}
	if opts.Sender == nil {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return nil, fmt.Errorf("stk: service %q: %w", name, ErrClosed)
		}
		if e.sender == nil {
			// Options.TLS serves a "tls:" monitor address too (a
			// monitor's ServeTLS, stkd --monitor-tls): the same CAs and
			// client certificate as for the name server.
			e.sender = smartbeat.NewSender(smartbeat.SenderOptions{Logger: e.log, Flow: flow.Options{TLS: e.opts.TLS}})
		}
		opts.Sender = e.sender
		e.mu.Unlock()
	}
	svc, err := smartbeat.NewService(name, opts)
	if err != nil {
		return nil, fmt.Errorf("stk: service %q (monitor %s, name server %s): %w", name, opts.Monitor, e.nsString, err)
	}
	s := &service{env: e, svc: svc}
	if !e.adopt(s) {
		svc.Close()
		return nil, fmt.Errorf("stk: service %q: %w", name, ErrClosed)
	}
	return svc, nil
}
