package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// fakeNATS is a connection whose server side is the given bytes; what the
// client writes is kept.
func fakeNATS(in string) (*natsConn, *bytes.Buffer) {
	var out bytes.Buffer
	return newNATSConn(strings.NewReader(in), &out), &out
}

// TestNATSMsg reads MSG lines with and without a reply subject, spaced
// with runs of spaces and tabs, in any case.
func TestNATSMsg(t *testing.T) {
	for _, tc := range []struct {
		in, subject, sid, reply, data string
	}{
		{"MSG foo 1 5\r\nhello\r\n", "foo", "1", "", "hello"},
		{"MSG foo.bar 22 _INBOX.x.9 5\r\nhello\r\n", "foo.bar", "22", "_INBOX.x.9", "hello"},
		{"msg  a\t\tb  c 0\r\n\r\n", "a", "b", "c", ""},
		{"MSG a 1 4\r\n\r\n\r\n\r\n", "a", "1", "", "\r\n\r\n"}, // CRLF inside the payload
	} {
		c, _ := fakeNATS(tc.in)
		m, err := c.next()
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if string(m.subject) != tc.subject || string(m.sid) != tc.sid || string(m.reply) != tc.reply || string(m.data) != tc.data {
			t.Errorf("%q: got subject %q sid %q reply %q data %q", tc.in, m.subject, m.sid, m.reply, m.data)
		}
	}
}

// TestNATSPing answers the server's PING with PONG and skips INFO and +OK
// on the way to a message; two messages in a row reuse the buffers.
func TestNATSPing(t *testing.T) {
	c, out := fakeNATS("PING\r\nINFO {\"max_payload\":1048576}\r\n+OK\r\nMSG a 1 r 3\r\nabc\r\nMSG b 2 1\r\nx\r\n")
	m, err := c.next()
	if err != nil {
		t.Fatal(err)
	}
	if string(m.data) != "abc" || string(m.reply) != "r" {
		t.Errorf("first message: data %q reply %q", m.data, m.reply)
	}
	if out.String() != "PONG\r\n" {
		t.Errorf("wrote %q, want PONG", out.String())
	}
	m, err = c.next()
	if err != nil {
		t.Fatal(err)
	}
	if string(m.subject) != "b" || string(m.data) != "x" || len(m.reply) != 0 {
		t.Errorf("second message: subject %q data %q reply %q", m.subject, m.data, m.reply)
	}
}

// TestNATSErr gives the server's -ERR as an error.
func TestNATSErr(t *testing.T) {
	c, _ := fakeNATS("-ERR 'Authorization Violation'\r\n")
	_, err := c.next()
	if err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		t.Errorf("got %v, want the server's -ERR", err)
	}
}

// TestNATSGarbage: cut-off and malformed input is an error, never a panic
// nor an allocation of what a line claims.
func TestNATSGarbage(t *testing.T) {
	for _, in := range []string{
		"",
		"MSG foo 1 5",                  // no line end
		"MSG foo\r\n",                  // too few fields
		"MSG a b c d e f g\r\n",        // too many
		"MSG foo 1 abc\r\n",            // length not a number
		"MSG foo 1 -1\r\n",             // nor this
		"MSG foo 1 \r\n",               // no length (three fields)
		"MSG foo 1 99999999999999\r\n", // beyond the limit
		"MSG foo 1 1048577\r\n",        // just beyond it
		"MSG foo 1 5\r\nhel",           // payload cut off
		"MSG foo 1 5\r\nhelloXY",       // payload without its CRLF
		"HELLO world\r\n",              // not an operation
		"\r\n",                         // empty line
		strings.Repeat("x", natsReadBuf+10) + "\r\n", // longer than any line
	} {
		c, _ := fakeNATS(in)
		_, err := c.next()
		if err == nil {
			t.Errorf("%.40q: no error", in)
		}
		t.Logf("%.40q: %v", in, err)
	}
}

// TestNATSPub writes one PUB with and without a reply subject.
func TestNATSPub(t *testing.T) {
	c, out := fakeNATS("")
	if err := c.pub([]byte("s"), []byte("r"), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := c.pub([]byte("s"), nil, nil); err != nil {
		t.Fatal(err)
	}
	if want := "PUB s r 2\r\nhi\r\nPUB s 0\r\n\r\n"; out.String() != want {
		t.Errorf("wrote %q, want %q", out.String(), want)
	}
}

// repeatReader reads the same bytes over and over.
type repeatReader struct {
	b   []byte
	off int
}

// Read copies from where the last Read stopped, wrapping around.
func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}

// TestNATSNoAlloc: a round trip's PUB and MSG allocate nothing once the
// buffers have grown, as the doc of nats.go says.
func TestNATSNoAlloc(t *testing.T) {
	c := newNATSConn(&repeatReader{b: []byte("MSG _INBOX.a 1 16\r\n0123456789abcdef\r\n")}, io.Discard)
	subject, inbox, data := []byte("stkbench.echo"), []byte("_INBOX.a"), make([]byte, 16)
	if n := testing.AllocsPerRun(1000, func() {
		if err := c.pub(subject, inbox, data); err != nil {
			t.Fatal(err)
		}
		if _, err := c.next(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per round trip, want 0", n)
	}
}

// TestNATSHandshake refuses a server that wants TLS, and syncs with one
// that does not.
func TestNATSHandshake(t *testing.T) {
	c, _ := fakeNATS("INFO {\"tls_required\":true}\r\n")
	if err := c.handshake("t"); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("TLS server: got %v", err)
	}
	c, _ = fakeNATS("NOTINFO\r\n")
	if err := c.handshake("t"); err == nil {
		t.Error("a server without INFO: no error")
	}
	c, out := fakeNATS("INFO {\"max_payload\":1048576}\r\nINFO {}\r\nPONG\r\n")
	if err := c.handshake("t"); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.HasPrefix(s, "CONNECT {") || !strings.Contains(s, `"verbose":false`) ||
		!strings.Contains(s, `"echo":false`) || !strings.HasSuffix(s, "}\r\nPING\r\n") {
		t.Errorf("wrote %q", s)
	}
}

// TestNATSServer does request/replies through a real nats-server, if one
// is on PATH, and checks that stopping it leaves nothing listening.
func TestNATSServer(t *testing.T) {
	path, err := exec.LookPath("nats-server")
	if err != nil {
		t.Skip("no nats-server on PATH")
	}
	srv, err := startNATSServer(context.Background(), path, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	stopEcho, err := startNATSEcho(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stopEcho()
	p, err := newNATSPinger(srv.addr, 32, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	for i := uint64(1); i <= 100; i++ {
		d, ok, err := p.ping(i)
		if err != nil || !ok || d <= 0 {
			t.Fatalf("round trip %d: %v, %v, %v", i, d, ok, err)
		}
		if t0 := int64(binary.LittleEndian.Uint64(p.buf)); t0 <= 0 {
			t.Fatalf("round trip %d: no send time in the payload", i)
		}
	}
	p.close()
	stopEcho()
	srv.stop()
	if c, err := net.DialTimeout("tcp", srv.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on %s after stop", srv.addr)
	}
}
