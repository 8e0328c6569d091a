package main

// A minimal NATS client, for the rtt nats case: request/reply through a
// nats-server, against which STK's round trips are compared.
//
// Why not the official client: the project takes no dependency for a
// benchmark, and this client is the leanest one possible (no reconnects,
// no subscription dispatch goroutines, no allocation per message, one
// write(2) per PUB), so what it measures is the floor of what NATS
// request/reply costs: a comparison generous to NATS. Note that a NATS
// request goes through a broker, two hops each way (client -> server ->
// echo and back), where an STK flow goes peer to peer.
//
// It speaks the client protocol's text lines: INFO from the server,
// CONNECT, SUB, PUB, MSG, PING/PONG, +OK and -ERR; no TLS, no
// authentication, no headers (HMSG).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

const (
	// natsMaxPayload bounds the payload of a MSG this client accepts: a
	// length the server claims beyond it is an error, never an allocation.
	natsMaxPayload = 1 << 20
	// natsReadBuf bounds a control line (INFO is the longest, ~400 bytes).
	natsReadBuf = 64 << 10
)

// natsConn is one connection to a nats-server. Not safe for concurrent
// use: one goroutine reads and writes it.
type natsConn struct {
	r      *bufio.Reader
	w      io.Writer
	conn   net.Conn // nil in tests over a plain reader and writer
	out    []byte   // the message being written: one Write per message
	msg    natsMsg  // the last MSG received, its buffers reused
	fields [6][]byte
}

// natsMsg is a message delivered to a subscription. Its slices are valid
// until the next read on the connection.
type natsMsg struct {
	subject, sid, reply []byte
	data                []byte
	buf                 []byte // data and its CRLF
}

// natsInfo is what this client reads of the server's INFO.
type natsInfo struct {
	MaxPayload   int64 `json:"max_payload"`
	AuthRequired bool  `json:"auth_required"`
	TLSRequired  bool  `json:"tls_required"`
}

// What a call of read found.
const (
	natsGotMsg = iota
	natsGotPong
)

// newNATSConn wraps a byte stream to a server; dialNATS also shakes hands.
func newNATSConn(r io.Reader, w io.Writer) *natsConn {
	return &natsConn{r: bufio.NewReaderSize(r, natsReadBuf), w: w}
}

// dialNATS connects to the nats-server at addr, reads its INFO, sends
// CONNECT (not verbose: no +OK per message; echo off) and waits for the
// PONG to a PING, so that the server has the connection before it is used.
func dialNATS(addr, name string, timeout time.Duration) (*natsConn, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("nats: connecting to the server at %s: %w", addr, err)
	}
	c := newNATSConn(conn, conn)
	c.conn = conn
	conn.SetDeadline(time.Now().Add(timeout))
	if err := c.handshake(name); err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake with the nats-server at %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

// handshake reads INFO, sends CONNECT and syncs with PING.
func (c *natsConn) handshake(name string) error {
	line, err := c.readLine()
	if err != nil {
		return err
	}
	op, rest := natsOp(line)
	if !bytes.EqualFold(op, []byte("INFO")) {
		return fmt.Errorf("the server's first line is %q, not INFO: is it a nats-server?", natsClip(line))
	}
	var info natsInfo
	if err := json.Unmarshal(rest, &info); err != nil {
		return fmt.Errorf("the server's INFO is not JSON: %w", err)
	}
	if info.AuthRequired || info.TLSRequired {
		return errors.New("the server requires authentication or TLS, which this minimal client does not do: run it without")
	}
	connect, _ := json.Marshal(map[string]any{
		"verbose": false, "pedantic": false, "tls_required": false, "echo": false,
		"headers": false, "no_responders": false, "protocol": 1,
		"lang": "go", "version": "stkbench", "name": name,
	})
	c.out = append(append(append(c.out[:0], "CONNECT "...), connect...), "\r\n"...)
	if _, err := c.w.Write(c.out); err != nil {
		return err
	}
	return c.sync()
}

// sub subscribes to subject with the subscription id sid.
func (c *natsConn) sub(subject, sid string) error {
	c.out = append(append(append(append(append(c.out[:0], "SUB "...), subject...), ' '), sid...), "\r\n"...)
	_, err := c.w.Write(c.out)
	return err
}

// sync sends PING and reads until its PONG: what was written before has
// been processed by the server (a SUB is in place). A MSG meanwhile is an
// error: sync is for before messages flow.
func (c *natsConn) sync() error {
	if _, err := c.w.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	got, err := c.read()
	if err != nil {
		return err
	}
	if got != natsGotPong {
		return fmt.Errorf("a message on %q came before the PONG", natsClip(c.msg.subject))
	}
	return nil
}

// pub publishes data on subject, with reply as its reply subject if not
// empty, in one Write.
func (c *natsConn) pub(subject, reply, data []byte) error {
	c.out = append(append(c.out[:0], "PUB "...), subject...)
	if len(reply) > 0 {
		c.out = append(append(c.out, ' '), reply...)
	}
	c.out = append(strconv.AppendInt(append(c.out, ' '), int64(len(data)), 10), "\r\n"...)
	c.out = append(append(c.out, data...), "\r\n"...)
	_, err := c.w.Write(c.out)
	return err
}

// next returns the next message delivered to a subscription, answering
// the server's PINGs on the way.
func (c *natsConn) next() (*natsMsg, error) {
	for {
		got, err := c.read()
		if err != nil {
			return nil, err
		}
		if got == natsGotMsg {
			return &c.msg, nil
		}
	}
}

// read reads protocol lines until a MSG (in c.msg) or a PONG: PING is
// answered, INFO (sent again after CONNECT and on cluster changes) and
// +OK are skipped, -ERR is an error.
func (c *natsConn) read() (int, error) {
	for {
		line, err := c.readLine()
		if err != nil {
			return 0, err
		}
		op, rest := natsOp(line)
		switch {
		case bytes.EqualFold(op, []byte("MSG")):
			return natsGotMsg, c.readMsg(line)
		case bytes.EqualFold(op, []byte("PING")):
			if _, err := c.w.Write([]byte("PONG\r\n")); err != nil {
				return 0, fmt.Errorf("nats: answering the server's PING: %w", err)
			}
		case bytes.EqualFold(op, []byte("PONG")):
			return natsGotPong, nil
		case bytes.EqualFold(op, []byte("INFO")), bytes.EqualFold(op, []byte("+OK")):
		case bytes.EqualFold(op, []byte("-ERR")):
			return 0, fmt.Errorf("nats: the server says -ERR %s", natsClip(rest))
		default:
			return 0, fmt.Errorf("nats: unexpected protocol line %q from the server", natsClip(line))
		}
	}
}

// readMsg parses a MSG line and reads its payload into c.msg.
func (c *natsConn) readMsg(line []byte) error {
	subject, sid, reply, n, err := c.parseMsgLine(line)
	if err != nil {
		return err
	}
	m := &c.msg
	// The line is in the reader's buffer, which reading the payload may
	// move: copy its parts first.
	m.subject = append(m.subject[:0], subject...)
	m.sid = append(m.sid[:0], sid...)
	m.reply = append(m.reply[:0], reply...)
	if cap(m.buf) < n+2 {
		m.buf = make([]byte, n+2) // n is at most natsMaxPayload
	}
	m.buf = m.buf[:n+2]
	if _, err := io.ReadFull(c.r, m.buf); err != nil {
		return fmt.Errorf("nats: reading a %d-byte payload on %q: %w", n, natsClip(m.subject), err)
	}
	if m.buf[n] != '\r' || m.buf[n+1] != '\n' {
		return fmt.Errorf("nats: the %d-byte payload on %q does not end with CRLF: the stream is out of step", n, natsClip(m.subject))
	}
	m.data = m.buf[:n]
	return nil
}

// parseMsgLine splits "MSG subject sid [reply] nbytes" (CRLF removed)
// into its fields, which point into line.
func (c *natsConn) parseMsgLine(line []byte) (subject, sid, reply []byte, n int, err error) {
	f, ok := natsFields(line, c.fields[:])
	switch {
	case !ok || (f != 4 && f != 5):
		return nil, nil, nil, 0, fmt.Errorf("nats: malformed MSG line %q: want MSG subject sid [reply] nbytes", natsClip(line))
	case f == 5:
		reply = c.fields[3]
	}
	n, err = natsSize(c.fields[f-1])
	if err != nil {
		return nil, nil, nil, 0, fmt.Errorf("nats: MSG line %q: %w", natsClip(line), err)
	}
	return c.fields[1], c.fields[2], reply, n, nil
}

// natsSize parses a payload length: decimal digits, at most natsMaxPayload.
func natsSize(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, errors.New("empty payload length")
	}
	n := 0
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, fmt.Errorf("payload length %q is not a number", natsClip(b))
		}
		n = n*10 + int(d-'0')
		if n > natsMaxPayload {
			return 0, fmt.Errorf("payload length %q over this client's limit of %d bytes", natsClip(b), natsMaxPayload)
		}
	}
	return n, nil
}

// readLine returns the next protocol line without its CRLF; the slice is
// valid until the next read.
func (c *natsConn) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("nats: a protocol line longer than %d bytes from the server: not NATS, or out of step", natsReadBuf)
	case err == io.EOF && len(line) > 0:
		return nil, fmt.Errorf("nats: the server's line %q is cut off: %w", natsClip(line), io.ErrUnexpectedEOF)
	case err != nil:
		return nil, fmt.Errorf("nats: reading from the server: %w", err)
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

// natsOp splits a line into its operation and the rest after the
// whitespace that follows it.
func natsOp(line []byte) (op, rest []byte) {
	i := bytes.IndexAny(line, " \t")
	if i < 0 {
		return line, nil
	}
	return line[:i], bytes.TrimLeft(line[i:], " \t")
}

// natsFields splits line at runs of spaces and tabs into f, without
// allocating; false if it has more fields than f holds.
func natsFields(line []byte, f [][]byte) (int, bool) {
	n := 0
	for i := 0; i < len(line); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			break
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		if n == len(f) {
			return n, false
		}
		f[n] = line[i:j]
		n++
		i = j
	}
	return n, true
}

// natsClip shortens what goes into an error message.
func natsClip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// close closes the connection.
func (c *natsConn) close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}
