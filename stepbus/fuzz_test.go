package stepbus

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stk-go/stk/step"
)

// FuzzSegment: the archive's read side (frame scanner, repair, reader)
// never panics on any file, repair leaves only complete frames, and a
// repaired file reads without a zstd error.
func FuzzSegment(f *testing.F) {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	line := []byte(`{"id":"x","time":{"start":1},"event":{"type":"a.b","description":""},"space":{"hostname":"h"},"psychology":{"valence":0,"intensity":0}}` + "\n")
	one := enc.EncodeAll(line, nil)
	f.Add(one)
	f.Add(append(append([]byte{}, one...), one...))
	f.Add(append(append([]byte{}, one...), one[:len(one)/2]...))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}) // claims a huge content size
	f.Add([]byte{0x50, 0x2a, 0x4d, 0x18, 0xff, 0xff, 0xff, 0xff})                               // skippable frame claiming 4 GiB
	f.Fuzz(func(t *testing.T, data []byte) {
		good := validFrames(data)
		if good < 0 || good > len(data) {
			t.Fatalf("validFrames = %d of %d bytes", good, len(data))
		}
		if n, _ := frameLen(data); n < 0 || n > len(data) {
			t.Fatalf("frameLen = %d of %d bytes", n, len(data))
		}
		path := filepath.Join(t.TempDir(), "steps-20261122T000000Z.jsonl.zst")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := RepairSegment(path); err != nil {
			t.Fatal(err)
		}
		after, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return // wholly unreadable: removed
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(after, data[:len(after)]) || validFrames(after) != len(after) {
			t.Fatalf("repair left %d bytes that are not a prefix of complete frames", len(after))
		}
		// What is left decodes whole (the lines need not be STEPs: the
		// fuzzer writes any content), and the reader never panics.
		d, err := newArchiveDecoder(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if _, err := d.DecodeAll(after, nil); err != nil {
			t.Fatalf("repaired segment does not decode: %v", err)
		}
		ReadSegment(path, func(*step.Step) error { return nil })
	})
}
