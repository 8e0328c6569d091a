package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/stk-go/stk/seq"
)

// Raw name-service frames, as a C client (or an attacker) writes them.

func cstr(s string) []byte { return append([]byte(s), 0) }

// registration encodes a REQUEST for name with one tcp address, linger
// seconds, and meta bytes of meta-data (user type 0x1000) if meta > 0.
func registration(buf []byte, id uint64, name string, linger int32, meta int) []byte {
	s := seq.Sequence{ID: seq.IDNameRequest, Name: seq.NameNameRequest, Type: seq.TypeRequest}
	s.Add(seq.UTNSRequestID, binary.LittleEndian.AppendUint64(nil, id))
	s.Add(seq.UTNSName, cstr(name))
	s.Add(seq.UTNSLinger, binary.LittleEndian.AppendUint32(nil, uint32(linger)))
	addr := []byte{0, 0, 0x58, 0x1b, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0} // 127.0.0.1:7000
	s.Add(seq.UTNSConnectIPv4, addr)
	s.Add(seq.UTNSProtocol, cstr("tcp"))
	if meta > 0 {
		s.Add(0x1000, make([]byte, meta))
	}
	out, err := seq.AppendTCP(buf, &s)
	if err != nil {
		panic(err)
	}
	return out
}

// subscription encodes a SUBSCRIBE for name, as the C client does.
func subscription(buf []byte, id uint64, name string) []byte {
	s := seq.Sequence{ID: seq.IDNameRequest, Name: seq.NameNameRequest, Type: seq.TypeSubscribe}
	s.Add(seq.UTNSRequestID, binary.LittleEndian.AppendUint64(nil, id))
	s.Add(seq.UTNSName, cstr(name))
	out, err := seq.AppendTCP(buf, &s)
	if err != nil {
		panic(err)
	}
	return out
}

// flood sends n requests (req(i) encodes request i) over TCP connections
// to addr, in batches, reading the replies meanwhile. When the server
// closes the connection, it reconnects and goes on with the next request
// (up to reconnects times), as an attacker would. It returns when every
// request was sent and the server answered them all or stayed quiet for
// quiet, or ctx ends.
func flood(addr string, o floodOpts, req func(buf []byte, i int) []byte) (floodResult, error) {
	var r floodResult
	i := 0
	start := time.Now()
	n, batch, deadline := o.n, o.batch, o.deadline
	for i < n && time.Now().Before(deadline) {
		var dialer net.Dialer
		if o.source != nil {
			dialer.LocalAddr = &net.TCPAddr{IP: o.source(r.conns)}
		}
		conn, err := dialer.Dial("tcp", addr)
		if err != nil {
			return r, fmt.Errorf("connect %s: %w", addr, err)
		}
		var replies atomic.Int64
		closed := make(chan struct{})
		go func() { // the replies: count REQUEST replies (stored)
			defer close(closed)
			buf := make([]byte, 0, 1<<20)
			tmp := make([]byte, 256<<10)
			for {
				m, err := conn.Read(tmp)
				if err != nil {
					return
				}
				buf = append(buf, tmp[:m]...)
				for {
					var q seq.Sequence
					k, _, err := seq.DecodeTCP(&q, buf, 0)
					if err != nil {
						return
					}
					if k == 0 {
						break
					}
					if q.Type == seq.TypeRequest {
						replies.Add(1)
					}
					buf = buf[k:]
				}
				if len(buf) == 0 {
					buf = buf[:0:cap(buf)]
				} else {
					buf = append(make([]byte, 0, 1<<20), buf...)
				}
			}
		}()
		sentHere := 0
		var out []byte
		for i < n && time.Now().Before(deadline) && (o.perConn == 0 || sentHere < o.perConn) {
			out = out[:0]
			k := 0
			for ; k < batch && i+k < n && (o.perConn == 0 || sentHere+k < o.perConn); k++ {
				out = req(out, i+k)
			}
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(out); err != nil {
				break // closed by the server: reconnect
			}
			i += k
			sentHere += k
		}
		// Wait for the replies: all of them, or quiet, or the close.
		last, lastN := time.Now(), replies.Load()
		for replies.Load() < int64(sentHere) && time.Since(last) < o.quiet && time.Now().Before(deadline) {
			select {
			case <-closed:
				last = time.Time{}
			case <-time.After(20 * time.Millisecond):
			}
			if v := replies.Load(); v != lastN {
				last, lastN = time.Now(), v
			}
		}
		r.replies += int(replies.Load())
		conn.Close()
		<-closed
		r.conns++
		if r.conns > o.reconnects {
			break
		}
	}
	r.sent = i
	r.elapsed = time.Since(start)
	return r, nil
}

// floodOpts shape a flood.
type floodOpts struct {
	n, batch   int
	perConn    int // requests per connection before the next one (0: no bound)
	reconnects int // connections after the first, at most
	quiet      time.Duration
	deadline   time.Time
	source     func(conn int) net.IP // source address of connection conn (nil: any)
}

type floodResult struct {
	sent, replies, conns int
	elapsed              time.Duration
}

func (r floodResult) figures() []figure {
	return []figure{{"sent", fmt.Sprint(r.sent)}, {"stored_replies", fmt.Sprint(r.replies)},
		{"connections", fmt.Sprint(r.conns)}, {"flood_time", r.elapsed.Round(10 * time.Millisecond).String()}}
}
