package cli

import "encoding/binary"

// ExamplePayload is the element of n bytes the publish examples send, C's
// publish.c and examples/publish alike: 0x0123456789abcdef repeated (little
// endian), starting with "default data" and ending with de ad. Tests of the
// C publisher compare what they receive with it.
func ExamplePayload(n int) []byte {
	p := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(p[i:], 0x0123456789abcdef)
	}
	p = p[:n]
	copy(p[:max(0, min(12, n-2))], "default data")
	if n >= 2 {
		p[n-2], p[n-1] = 0xde, 0xad
	}
	return p
}
