package namesvc

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/internal/testutil/testpeer"
	"github.com/stk-go/stk/seq"
)

// Benchmarks over loopback TCP, Go client ↔ Go server. Run with
//
//	go test -run '^$' -bench . -benchtime 2s ./namesvc
//
// Goals: ≥ 100 k registrations/s and ≥ 200 k lookups/s with 100 clients,
// lookup round trip p50 < 60 µs and p99 < 500 µs, register→subscriber
// notification p99 < 1 ms.

const benchClients = 100

// benchInFlight are the numbers of requests each client keeps outstanding
// (goroutines calling it concurrently) in the client benchmarks: the more,
// the more the flows batch their writes.
var benchInFlight = []int{1, 8, 64}

func benchServer(b *testing.B) *testServer {
	b.Helper()
	return startServer(b, ServerConfig{Now: time.Now, Logger: testutil.Discard(), Limits: NoLimits()}, "", "")
}

func benchClientsDial(b *testing.B, ts *testServer, n int) []*Client {
	b.Helper()
	cs := make([]*Client, n)
	for i := range cs {
		cs[i] = dial(b, ts.tcp(), ClientOptions{Logger: testutil.Discard()})
	}
	for _, c := range cs {
		if err := c.WaitConnected(ctxT(b)); err != nil {
			b.Fatal(err)
		}
	}
	return cs
}

// runSpread runs b.N operations spread over clients × benchInFlight
// goroutines and reports the rate as metric unit.
func runSpread(b *testing.B, clients []*Client, inFlight int, unit string, op func(c *Client, worker, i int) error) {
	b.Helper()
	var next atomic.Int64
	runWorkers(b, len(clients)*inFlight, unit, func(worker int) error {
		c := clients[worker/inFlight]
		for {
			i := int(next.Add(1)) - 1
			if i >= b.N {
				return nil
			}
			if err := op(c, worker, i); err != nil {
				return err
			}
		}
	})
}

// runWorkers runs work(0) … work(n-1) in goroutines of their own, timed
// from the call, and reports b.N per second as metric unit; a worker's
// error fails b once all are done.
func runWorkers(b *testing.B, n int, unit string, work func(worker int) error) {
	b.Helper()
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range n {
		wg.Go(func() {
			if err := work(w); err != nil {
				failed.Store(err)
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), unit)
}

// BenchmarkRegister: registrations per second, 100 clients, each
// registration confirmed by the server. Each worker cycles over 16 names,
// so most registrations replace their client's previous one, as periodic
// re-registrations do.
func BenchmarkRegister(b *testing.B) {
	for _, inFlight := range benchInFlight {
		b.Run(fmt.Sprintf("inflight=%d", inFlight), func(b *testing.B) {
			ts := benchServer(b)
			clients := benchClientsDial(b, ts, benchClients)
			infos := make([][]Info, benchClients*inFlight)
			for w := range infos {
				for k := range 16 {
					infos[w] = append(infos[w], regInfo(fmt.Sprintf("bench-%d-%d", w, k)))
				}
			}
			ctx := context.Background()
			runSpread(b, clients, inFlight, "registrations/s", func(c *Client, w, i int) error {
				return c.Register(ctx, infos[w][i%16])
			})
		})
	}
}

// BenchmarkLookup: lookups per second, 100 clients, each lookup answered
// (one registration) and ended by the end-of-answers marker.
func BenchmarkLookup(b *testing.B) {
	for _, inFlight := range benchInFlight {
		b.Run(fmt.Sprintf("inflight=%d", inFlight), func(b *testing.B) {
			ts := benchServer(b)
			clients := benchClientsDial(b, ts, benchClients)
			names := make([]string, 100)
			for k := range names {
				names[k] = fmt.Sprintf("name-%d", k)
				register(b, clients[k], regInfo(names[k]))
			}
			runSpread(b, clients, inFlight, "lookups/s", func(c *Client, w, i int) error {
				done := make(chan LookupResult, 1)
				if _, err := c.Lookup(names[i%100], LookupOptions{Expiration: time.Minute}, nil, func(r LookupResult) { done <- r }); err != nil {
					return err
				}
				if r := <-done; r.Answers != 1 || !r.Complete {
					return fmt.Errorf("lookup ended with %+v", r)
				}
				return nil
			})
		})
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func reportLatency(b *testing.B, d []time.Duration) {
	b.ReportMetric(float64(percentile(d, 0.50).Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(percentile(d, 0.99).Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(0, "ns/op") // the percentiles are the result
}

// BenchmarkLookupLatency: round trip of one lookup (request → answer →
// end-of-answers marker) on an otherwise idle client and server.
func BenchmarkLookupLatency(b *testing.B) {
	ts := benchServer(b)
	c := benchClientsDial(b, ts, 1)[0]
	register(b, c, regInfo("latency"))
	done := make(chan LookupResult, 1)
	onDone := func(r LookupResult) { done <- r }
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := c.Lookup("latency", LookupOptions{Expiration: time.Minute}, nil, onDone); err != nil {
			b.Fatal(err)
		}
		if r := <-done; r.Answers != 1 {
			b.Fatalf("lookup: %+v", r)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkNotifyLatency: from the Register call of one client to the
// subscription callback of another.
func BenchmarkNotifyLatency(b *testing.B) {
	ts := benchServer(b)
	cs := benchClientsDial(b, ts, 2)
	reg, sub := cs[0], cs[1]
	got := make(chan time.Time, 1)
	synced := make(chan int, 1)
	if _, err := sub.Subscribe("notify", SubscribeOptions{OnSynced: func(n int) { synced <- n }}, func(Info) { got <- time.Now() }); err != nil {
		b.Fatal(err)
	}
	recv(b, synced, "subscription")
	info := regInfo("notify")
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		info.Addresses[0].Addr = netip.AddrPortFrom(info.Addresses[0].Addr.Addr(), uint16(i))
		start := time.Now()
		if err := reg.Register(ctx, info); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-got).Sub(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// discardPeer is a TCP peer that drops what it is sent.
type discardPeer struct{ *testpeer.Peer }

func (*discardPeer) Send(*seq.Sequence) error { return nil }

// BenchmarkMemoryPerName: heap held per registered name with 100 000
// names, each a typical registration (name, linger, one tcp address, FT
// state), registered from 100 connections.
func BenchmarkMemoryPerName(b *testing.B) {
	const names = 100_000
	for range b.N {
		s, _ := newTestServer(b, ServerConfig{Logger: testutil.Discard(), Limits: NoLimits()})
		peers := make([]*discardPeer, 100)
		for i := range peers {
			peers[i] = &discardPeer{testpeer.New(flow.TCP, fmt.Sprintf("127.0.0.1:%d", 30000+i))}
		}
		reqs := make([]*seq.Sequence, names)
		for i := range reqs {
			info := regInfo(fmt.Sprintf("service-name-%06d", i))
			reqs[i] = buildRegister(uint64(i), &info)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i, q := range reqs {
			s.Handle(peers[i%len(peers)], q)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(reqs) // counted in both measurements
		if s.Stats().Registrations != names {
			b.Fatalf("%d registrations", s.Stats().Registrations)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/names, "bytes/name")
		runtime.KeepAlive(s)
	}
}

// The Server benchmarks drive the server with 100 raw connections that
// write pre-encoded requests in batches of benchBatch and read the
// replies, as C clients or Go clients busy enough to batch their writes
// would: this measures the server, where BenchmarkRegister and
// BenchmarkLookup mostly measure 100 Go clients sharing the machine with
// it.
const benchBatch = 32

// rawPipeline runs b.N requests over 100 raw connections; req returns the
// encoded request i of connection c, and each request is done when
// perRequest sequences came back.
func rawPipeline(b *testing.B, ts *testServer, unit string, perRequest int, req func(c, i int) []byte) {
	b.Helper()
	conns := make([]*replayClient, benchClients)
	for i := range conns {
		conn, err := net.Dial("tcp", ts.tcpAddr.String())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		conns[i] = &replayClient{label: "bench", tcp: conn, isTCP: true}
	}
	var next atomic.Int64
	runWorkers(b, len(conns), unit, func(ci int) error {
		c := conns[ci]
		var out, buf []byte // requests to write, replies read and not decoded yet
		tmp := make([]byte, 256<<10)
		for {
			first := int(next.Add(benchBatch)) - benchBatch
			if first >= b.N {
				return nil
			}
			n := min(benchBatch, b.N-first)
			out = out[:0]
			for i := range n {
				out = append(out, req(ci, first+i)...)
			}
			if _, err := c.tcp.Write(out); err != nil {
				return err
			}
			for want := n * perRequest; want > 0; {
				var q seq.Sequence
				k, _, err := seq.DecodeTCP(&q, buf, 0)
				if err != nil {
					return err
				}
				if k > 0 {
					buf = buf[k:]
					want--
					continue
				}
				m, err := c.tcp.Read(tmp)
				if err != nil {
					return err
				}
				buf = append(buf, tmp[:m]...)
			}
		}
	})
}

func encodeTCP(b *testing.B, q *seq.Sequence) []byte {
	out, err := seq.AppendTCP(nil, q)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkServerRegister: registrations per second the server handles
// from 100 pipelining connections (16 names each, replaced in turn).
func BenchmarkServerRegister(b *testing.B) {
	ts := benchServer(b)
	reqs := make([][][]byte, benchClients)
	for c := range reqs {
		for k := range 16 {
			info := regInfo(fmt.Sprintf("bench-%d-%d", c, k))
			reqs[c] = append(reqs[c], encodeTCP(b, buildRegister(uint64(k), &info)))
		}
	}
	rawPipeline(b, ts, "registrations/s", 1, func(c, i int) []byte { return reqs[c][i%16] })
}

// BenchmarkServerLookup: lookups per second the server handles from 100
// pipelining connections; each lookup gets one answer and the
// end-of-answers marker.
func BenchmarkServerLookup(b *testing.B) {
	ts := benchServer(b)
	cl := benchClientsDial(b, ts, 1)[0]
	var reqs [][]byte
	for k := range 100 {
		name := fmt.Sprintf("name-%d", k)
		register(b, cl, regInfo(name))
		reqs = append(reqs, encodeTCP(b, buildQuery(seq.TypeQuery, uint64(k), name, "", true)))
	}
	rawPipeline(b, ts, "lookups/s", 2, func(c, i int) []byte { return reqs[(c+i)%100] })
}

// BenchmarkSubscribeDisconnect: one connection subscribes to n names,
// then disconnects, over and over; an op is one subscription (its share
// of the disconnect included). With constant-time subscribe,
// replacement and disconnect, ns/op stays flat from 1 k to 80 k
// subscriptions per connection; a scan of the connection's subscriptions
// per subscribe would make it grow with n.
func BenchmarkSubscribeDisconnect(b *testing.B) {
	for _, n := range []int{1000, 10_000, 80_000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			s, _ := newTestServer(b, ServerConfig{Logger: testutil.Discard(), Limits: NoLimits()})
			reqs := make([]*seq.Sequence, n)
			for i := range reqs {
				reqs[i] = buildQuery(seq.TypeSubscribe, uint64(i), fmt.Sprintf("sub-%06d", i), "", true)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var p *discardPeer
			for i := range b.N {
				if i%n == 0 {
					if p != nil {
						s.Disconnect(p)
					}
					p = &discardPeer{testpeer.New(flow.TCP, "127.0.0.1:40000")}
				}
				s.Handle(p, reqs[i%n])
			}
			s.Disconnect(p)
			b.StopTimer()
			if st := s.Stats(); st.Subscriptions != 0 {
				b.Fatalf("%d subscriptions left", st.Subscriptions)
			}
		})
	}
}
