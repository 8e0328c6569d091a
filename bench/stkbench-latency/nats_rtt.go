package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"
)

// natsEchoSubject is the subject the NATS echo serves requests on.
const natsEchoSubject = "stkbench.echo"

// startNATSEcho connects to the nats-server at addr and answers every
// request on natsEchoSubject with its payload, to its reply subject, until
// stop is called; stop returns when the echo loop has ended.
func startNATSEcho(addr string) (stop func(), err error) {
	nc, err := dialNATS(addr, "stkbench-echo", 10*time.Second)
	if err != nil {
		return nil, err
	}
	if err := nc.sub(natsEchoSubject, "1"); err != nil {
		nc.close()
		return nil, fmt.Errorf("nats echo: subscribing: %w", err)
	}
	if err := nc.sync(); err != nil { // the subscription is in place before "ready"
		nc.close()
		return nil, fmt.Errorf("nats echo: subscribing: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := nc.next()
			if err != nil {
				return // the connection closed (stop) or failed: the pinger sees no reply
			}
			if len(m.reply) == 0 {
				continue // not a request
			}
			if err := nc.pub(m.reply, nil, m.data); err != nil {
				return
			}
		}
	}()
	return func() {
		nc.close()
		<-done
	}, nil
}

// natsPinger sends requests to the NATS echo, one outstanding, and waits
// for each reply on its own inbox, as the raw case's ping-pong does.
type natsPinger struct {
	nc      *natsConn
	inbox   []byte
	subject []byte
	buf     []byte // the payload: send time, round trip, padding to size
}

// newNATSPinger connects to the nats-server at addr and subscribes to an
// inbox. Reads fail after deadline, so that an echo that stopped answering
// ends the run instead of blocking it (one deadline for the whole run:
// none set per round trip, which the raw case does not pay either).
func newNATSPinger(addr string, size int, deadline time.Time) (*natsPinger, error) {
	nc, err := dialNATS(addr, "stkbench-rtt", 10*time.Second)
	if err != nil {
		return nil, err
	}
	p := &natsPinger{nc: nc, inbox: fmt.Appendf(nil, "_INBOX.stkbench.%d", os.Getpid()),
		subject: []byte(natsEchoSubject), buf: make([]byte, size)}
	if err := nc.sub(string(p.inbox), "1"); err == nil {
		err = nc.sync()
	}
	if err != nil {
		nc.close()
		return nil, fmt.Errorf("nats: subscribing to the inbox: %w", err)
	}
	nc.conn.SetReadDeadline(deadline)
	return p, nil
}

// ping makes round trip i: its time from the PUB to the reply's payload
// read, as raw's from Write to the end of ReadFull.
func (p *natsPinger) ping(i uint64) (int64, bool, error) {
	t0 := time.Now().UnixNano()
	binary.LittleEndian.PutUint64(p.buf, uint64(t0))
	binary.LittleEndian.PutUint64(p.buf[8:], i)
	if err := p.nc.pub(p.subject, p.inbox, p.buf); err != nil {
		return 0, false, fmt.Errorf("nats: publishing request %d: %w", i, err)
	}
	m, err := p.nc.next()
	if err != nil {
		return 0, false, fmt.Errorf("nats: waiting for reply %d: %w", i, err)
	}
	if len(m.data) != len(p.buf) {
		return 0, false, fmt.Errorf("nats echo returned %d bytes, want %d", len(m.data), len(p.buf))
	}
	if n := binary.LittleEndian.Uint64(m.data[8:]); n != i {
		return 0, false, fmt.Errorf("nats echo returned round trip %d, want %d", n, i)
	}
	return time.Now().UnixNano() - t0, true, nil
}

// close closes the pinger's connection.
func (p *natsPinger) close() { p.nc.close() }
