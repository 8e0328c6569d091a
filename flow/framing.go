package flow

import "github.com/stk-go/stk/seq"

// framer cuts a TCP byte stream into sequences. Both the server's event loop
// and the client's reader feed it whatever bytes they have; it decodes every
// whole frame and remembers how many bytes the next one needs, so a large
// frame arriving in many reads is decoded once, not once per read.
type framer struct {
	rx      seq.Sequence // reused for every frame; handlers must not keep it
	need    int          // bytes the next frame needs before decoding again
	maxSize int
}

// ready reports whether buffered bytes are enough to try decoding again.
func (f *framer) ready(buffered int) bool { return buffered >= f.need && buffered > 0 }

// consume decodes the whole frames at the start of buf, calling handle for
// each, and returns the bytes consumed. The frames alias buf. After an error
// the stream cannot be resynchronised and the connection must be closed.
func (f *framer) consume(buf []byte, handle func(*seq.Sequence)) (int, error) {
	off := 0
	for off < len(buf) {
		n, need, err := seq.DecodeTCP(&f.rx, buf[off:], f.maxSize)
		if err != nil {
			return off, err
		}
		if n == 0 {
			f.need = need
			return off, nil
		}
		off += n
		f.need = 0
		handle(&f.rx)
	}
	return off, nil
}

// room makes buf ready for the next read, buf[r:w] being the bytes
// buffered but not consumed yet: it moves them to the start, then grows
// buf (at least doubling it) when the next frame needs more than buf
// holds. It returns the buffer and the new end of the buffered bytes,
// which now start at 0.
func (f *framer) room(buf []byte, r, w int) ([]byte, int) {
	if r > 0 {
		w = copy(buf, buf[r:w])
	}
	if f.need > len(buf) {
		nb := make([]byte, max(f.need, 2*len(buf)))
		copy(nb, buf[:w])
		buf = nb
	}
	return buf, w
}
