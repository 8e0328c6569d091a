package seq

import (
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// The tests of each source file are in its _test.go twin (tcp.go,
// tcp_test.go; udp.go, udp_test.go; ...); captures_test.go reads the C
// captures they share. Each file holds its codec's worked example, golden
// tests, fuzz targets (testdata/fuzz/<Target> keeps inputs found by
// fuzzing; the seed corpora are the captures' frames and datagrams) and
// benchmarks, codec only, no sockets (sequences look like the C publish
// example's; b.SetBytes counts wire bytes):
//
//	go test ./seq -run XXX -bench . -benchtime 1s
//
// This file holds the helpers several of them use.

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
func unhexString(s string) []byte {
	var b []byte
	for _, f := range strings.Fields(s) {
		v, err := strconv.ParseUint(f, 16, 8)
		if err != nil {
			panic(err)
		}
		b = append(b, byte(v))
	}
	return b
}

// within reports whether sub lies inside b's memory.
func within(sub, b []byte) bool {
	if len(sub) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	s0 := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	b0 := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return s0 >= b0 && s0+uintptr(len(sub)) <= b0+uintptr(len(b))
}
func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v wraps neither ErrMalformed nor ErrTooLarge", err)
	}
}
func head(b []byte) []byte { return b[:min(len(b), 256)] }
func benchSequence(size int) *Sequence {
	s := New(0x6a549557, "publish sequence", TypeData)
	s.Add(UTExampleData, publishPayload(size))
	return s
}
func reportMsgs(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
