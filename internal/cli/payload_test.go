package cli

import (
	"bytes"
	"testing"
)

// TestExamplePayload: the layout C's publish.c fills its element with, at
// the lengths where the text, the pattern and the end marker overlap.
func TestExamplePayload(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{}},
		{1, []byte{0xef}},
		{2, []byte{0xde, 0xad}},
		{5, []byte("def\xde\xad")},
		{14, []byte("default data\xde\xad")},
		{20, append([]byte("default data"), 0x67, 0x45, 0x23, 0x01, 0xef, 0xcd, 0xde, 0xad)}, // the pattern runs on under the text
	} {
		if got := ExamplePayload(tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("ExamplePayload(%d) = %x, want %x", tc.n, got, tc.want)
		}
	}
}
