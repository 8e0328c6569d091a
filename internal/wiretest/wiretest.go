// Package wiretest holds the helpers of tests that speak the sequence wire
// format over real sockets or read it from captures: decoding a captured
// TCP stream into its sequences, and reading sequences from a TCP
// connection with a deadline. It imports only seq, so the tests of seq's
// users (namesvc, cluster) can share it.
package wiretest

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/stk-go/stk/seq"
)

// Frame is one sequence of a TCP stream with its bytes on the wire.
type Frame struct {
	Raw []byte
	Seq *seq.Sequence
}

// DecodeFrames decodes a whole TCP stream (a capture's bytes of one
// connection and direction) and fails t on a malformed or truncated frame.
// Raw are slices of b; Seq are copies.
func DecodeFrames(t testing.TB, b []byte) []Frame {
	t.Helper()
	var out []Frame
	for len(b) > 0 {
		var q seq.Sequence
		n, _, err := seq.DecodeTCP(&q, b, 0)
		if err != nil || n == 0 {
			t.Fatalf("captured stream: n=%d err=%v", n, err)
		}
		out = append(out, Frame{Raw: b[:n], Seq: q.Clone()})
		b = b[n:]
	}
	return out
}

// DecodeStream is DecodeFrames without the bytes: the stream's sequences.
func DecodeStream(t testing.TB, b []byte) []*seq.Sequence {
	t.Helper()
	fs := DecodeFrames(t, b)
	out := make([]*seq.Sequence, len(fs))
	for i, f := range fs {
		out[i] = f.Seq
	}
	return out
}

// Reader reads sequences from a TCP connection, keeping what it has read
// beyond one frame for the next.
type Reader struct {
	Conn  net.Conn
	Label string // names the connection in failures
	buf   []byte
}

// Next returns the next frame (Raw a copy), or false when deadline passes
// or the connection fails first; a malformed frame fails t.
func (r *Reader) Next(t testing.TB, deadline time.Time) (Frame, bool) {
	t.Helper()
	for {
		var q seq.Sequence
		n, _, err := seq.DecodeTCP(&q, r.buf, 0)
		if err != nil {
			t.Fatalf("%s: %v", r.Label, err)
		}
		if n > 0 {
			f := Frame{Raw: slices.Clone(r.buf[:n]), Seq: q.Clone()}
			r.buf = r.buf[n:]
			return f, true
		}
		r.Conn.SetReadDeadline(deadline)
		tmp := make([]byte, 64<<10)
		m, err := r.Conn.Read(tmp)
		if err != nil {
			return Frame{}, false
		}
		r.buf = append(r.buf, tmp[:m]...)
	}
}
