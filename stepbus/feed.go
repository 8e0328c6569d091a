package stepbus

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk"
	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
	"github.com/stk-go/stk/step"
)

// feedServed is what a second ServeFeed fails with (attach makes the error).
const feedServed = "stepbus: the feed is already served"

// registerRetry is how long one feed registration attempt waits for the
// name server before it is logged and tried again.
const registerRetry = 10 * time.Second

// feed republishes accepted STEPs on a TCP publisher (stk.Listen).
// Encoding and sending run on its own goroutine behind a bounded queue, so
// a slow feed subscriber (which the flow may make Send wait for) never
// holds Publish.
type feed struct {
	b    *Bus
	pub  *stk.Publisher
	ann  *stk.Announcement // nil without a name server
	adv  netip.AddrPort    // the registered address
	q    chan *step.Step
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{}

	sent, dropped atomic.Uint64
}

// ServeFeed starts the feed: a TCP server flow on addr ("ip:port"; port 0
// picks one) on which every STEP the bus accepts from now on is sent as one
// STEP sequence (step.Encode). With Config.NameServer it registers the
// feed's address as Config.FeedName there, in the background (again until
// the name server confirms it, and after reconnects). It returns the
// address the flow listens on. A bus has one feed: another call fails
// before it listens or registers anything.
func (b *Bus) ServeFeed(addr string) (netip.AddrPort, error) {
	// A second feed is refused before it listens or registers: registered
	// under the feed's name and then dropped, its address would linger
	// there (KeepOnClose) and send subscribers to a closed port.
	b.feedMu.Lock()
	defer b.feedMu.Unlock()
	if err := vacant(b, &b.feed, feedServed); err != nil {
		return netip.AddrPort{}, err
	}
	// Feed subscribers have nothing to say; what they send is ignored.
	pub, err := stk.Listen(addr, stk.ListenOptions{Name: "steps feed", Logger: b.log})
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("stepbus: feed: %w", err)
	}
	f := &feed{b: b, pub: pub, q: make(chan *step.Step, b.cfg.FeedQueue), done: make(chan struct{})}
	f.ctx, f.stop = context.WithCancel(context.Background())
	f.adv = pub.Addr().Addr
	if f.adv.Addr().IsUnspecified() {
		f.adv = netip.AddrPortFrom(b.advertiseIP(), f.adv.Port())
	}
	var env *stk.Env
	if b.cfg.NameServer != "" {
		if env, err = b.names(); err != nil {
			f.stop()
			pub.Close()
			return netip.AddrPort{}, err
		}
	}
	if env != nil {
		name := b.cfg.FeedName
		f.ann, err = env.Announce(pub, name, stk.AnnounceOptions{
			Linger: b.cfg.FeedLinger, AdvertiseIP: f.adv.Addr(), Attempt: registerRetry,
			KeepOnClose: true, // as the C programs do: a restarted stkd is found at once
			OnResult: func(err error) {
				if err == nil {
					b.log.Info("STEP feed registered", "name", name, "addr", "tcp:"+f.adv.String())
				} else {
					b.log.Warn("STEP feed not registered yet; still trying", "name", name, "err", err)
				}
			},
		})
	}
	if err == nil {
		err = attach(b, &b.feed, f, feedServed) // only if Close came meanwhile
	}
	if err != nil {
		f.stop()
		if f.ann != nil {
			f.ann.Close()
		}
		pub.Close()
		return netip.AddrPort{}, err
	}
	go f.run()
	if env == nil {
		b.log.Info("STEP feed not registered: no name server", "addr", f.adv)
	}
	return pub.Addr().Addr, nil
}

// advertiseIP is the IP registered for a feed on the unspecified address,
// which subscribers cannot connect to: Config.AdvertiseHost, else the
// address of this host's interface toward the name server, where the
// subscribers that find the feed come from (flow.AdvertiseIP).
func (b *Bus) advertiseIP() netip.Addr {
	if ip, err := netip.ParseAddr(b.cfg.AdvertiseHost); err == nil {
		return ip
	}
	var toward netip.Addr
	if b.cfg.NameServer != "" {
		if a, err := flow.ParseAddress(b.cfg.NameServer); err == nil {
			if ap, err := a.WithDefaults(namesvc.DefaultHost, namesvc.DefaultPort).HostAddrPort(); err == nil {
				toward = ap.Addr()
			}
		}
	}
	ip := flow.AdvertiseIP(netip.IPv4Unspecified(), toward)
	b.log.Info("STEP feed on every interface: registering the address of the interface toward the name server",
		"registered", ip, "name_server", b.cfg.NameServer)
	return ip
}

// enqueue hands s to the feed goroutine, or drops it when the queue is
// full.
func (f *feed) enqueue(s *step.Step) {
	select {
	case f.q <- s:
	default:
		f.dropped.Add(1)
	}
}

func (f *feed) run() {
	defer close(f.done)
	var q seq.Sequence
	send := func(s *step.Step) {
		if f.pub.Subscribers() == 0 {
			return // nobody listens: skip the encoding
		}
		if err := step.Encode(&q, s); err != nil {
			f.dropped.Add(1)
			return
		}
		if err := f.pub.Send(&q); err != nil {
			f.dropped.Add(1)
			return
		}
		f.sent.Add(1)
	}
	for {
		select {
		case s := <-f.q:
			send(s)
		case <-f.ctx.Done():
			for {
				select {
				case s := <-f.q:
					send(s)
				default:
					return
				}
			}
		}
	}
}

func (f *feed) stats() FeedStats {
	return FeedStats{
		Addr: "tcp:" + f.adv.String(), Name: f.b.cfg.FeedName, Registered: f.ann != nil && f.ann.Confirmed(),
		Conns: f.pub.Subscribers(), Sent: f.sent.Load(), Dropped: f.dropped.Load(),
	}
}

// close sends what is queued, then closes the publisher (its registration
// lingers for Config.FeedLinger).
func (f *feed) close() error {
	f.stop()
	<-f.done
	if f.ann != nil {
		f.ann.Close()
	}
	return f.pub.Close()
}
