package pcap

import "testing"

func TestReadCapture06(t *testing.T) {
	ps, err := Read("../../testdata/captures/06_pubsub_tcp.pcap")
	if err != nil {
		t.Fatal(err)
	}
	var data int
	for _, s := range Streams(ps) {
		if s.Src.Port() == 29312 {
			data += len(s.Data)
		}
	}
	if data != 3*69 {
		t.Fatalf("publisher sent %d bytes, want 3 frames of 69", data)
	}
}
