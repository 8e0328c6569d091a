package wiretest

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/stk-go/stk/seq"
)

func twoFrames(t *testing.T) (stream []byte, qs []*seq.Sequence) {
	t.Helper()
	for i, data := range []string{"first", "second, longer"} {
		q := seq.New(uint64(0x100+i), "wiretest", seq.TypeData)
		q.Add(7, []byte(data))
		var err error
		if stream, err = seq.AppendTCP(stream, q); err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q)
	}
	return stream, qs
}

// TestDecodeFrames: a stream of two frames gives both, with their bytes.
func TestDecodeFrames(t *testing.T) {
	stream, want := twoFrames(t)
	fs := DecodeFrames(t, stream)
	if len(fs) != 2 {
		t.Fatalf("%d frames, want 2", len(fs))
	}
	if !bytes.Equal(append(append([]byte{}, fs[0].Raw...), fs[1].Raw...), stream) {
		t.Error("the frames' bytes are not the stream")
	}
	for i, q := range DecodeStream(t, stream) {
		if q.ID != want[i].ID || string(q.Elements[0].Data) != string(want[i].Elements[0].Data) {
			t.Errorf("sequence %d: id %#x %q, want %#x %q", i, q.ID, q.Elements[0].Data, want[i].ID, want[i].Elements[0].Data)
		}
	}
}

// TestReaderOverTCP: two frames written byte by byte over loopback TCP
// are read whole; with nothing more to read, Next returns false at the
// deadline.
func TestReaderOverTCP(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stream, want := twoFrames(t)
	errc := make(chan error, 1)
	done := make(chan struct{}) // the writer keeps its end open until the reader's deadline has passed
	defer close(done)
	go func() {
		c, err := l.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		for i := range stream {
			if _, err := c.Write(stream[i : i+1]); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
		<-done
	}()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := &Reader{Conn: c, Label: "test"}
	for i := range want {
		f, ok := r.Next(t, time.Now().Add(10*time.Second))
		if !ok || f.Seq.ID != want[i].ID {
			t.Fatalf("frame %d: ok=%v %+v, want id %#x", i, ok, f.Seq, want[i].ID)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if f, ok := r.Next(t, start.Add(100*time.Millisecond)); ok {
		t.Fatalf("a third frame: %+v", f.Seq)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("Next returned false after %v, before its deadline", d)
	}
}
