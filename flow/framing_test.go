package flow

import (
	"bytes"
	"testing"
)

// TestFramerRoom: the unconsumed bytes move to the start, and the buffer
// grows (at least doubling) only when the next frame needs more.
func TestFramerRoom(t *testing.T) {
	fr := framer{}
	buf := []byte("0123456789")
	got, w := fr.room(buf, 6, 9)
	if w != 3 || !bytes.Equal(got[:w], []byte("678")) || len(got) != 10 || &got[0] != &buf[0] {
		t.Fatalf("compact: got %q (len %d), w=%d; want \"678\" in the same 10-byte buffer", got[:w], len(got), w)
	}

	fr.need = 15
	got, w = fr.room(got, 0, w)
	if w != 3 || !bytes.Equal(got[:w], []byte("678")) || len(got) != 20 {
		t.Fatalf("grow to double: got %q (len %d), w=%d; want \"678\" in 20 bytes", got[:w], len(got), w)
	}

	fr.need = 100
	got, w = fr.room(got, 1, 3)
	if w != 2 || !bytes.Equal(got[:w], []byte("78")) || len(got) != 100 {
		t.Fatalf("grow to need: got %q (len %d), w=%d; want \"78\" in 100 bytes", got[:w], len(got), w)
	}
}
