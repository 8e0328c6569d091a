package seq

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stk-go/stk/internal/pcap"
)

// Golden tests against the C captures in testdata/captures (docs/protocol.md
// §11): every TCP frame and STK-UDP datagram the C programs sent must decode
// to the fields the annotated dumps of the C reference documented (their
// values are written out in the tests below) and re-encode to the very same
// bytes. This file reads the captures and their index and checks the whole
// of them; the per-transport golden tests are in tcp_test.go and
// udp_test.go.

const captureDir = "../testdata/captures"

// captureIndexFile holds the "Message index" tables of the annotated dumps,
// one documented message a line.
const captureIndexFile = "testdata/golden/capture_index.txt"

var captureCache sync.Map // file name -> []pcap.Packet
func readCapture(t testing.TB, nn string) []pcap.Packet {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(captureDir, nn+"_*.pcap"))
	if err != nil || len(files) != 1 {
		t.Fatalf("capture %s: found %v (%v)", nn, files, err)
	}
	if ps, ok := captureCache.Load(files[0]); ok {
		return ps.([]pcap.Packet)
	}
	ps, err := pcap.Read(files[0])
	if err != nil {
		t.Fatal(err)
	}
	captureCache.Store(files[0], ps)
	return ps
}

// captureStreams returns the TCP byte streams of capture nn.
func captureStreams(t testing.TB, nn string) []pcap.Stream {
	return pcap.Streams(readCapture(t, nn))
}

// captureUDP returns the UDP packets of capture nn.
func captureUDP(t testing.TB, nn string) []pcap.Packet {
	return pcap.UDP(readCapture(t, nn))
}

// message is one TCP frame or UDP datagram of a capture.
type message struct {
	proto    string // "TCP", "UDP" or "rawudp"
	src, dst netip.AddrPort
	raw      []byte
	// TCP: the decoded frame. UDP: what the datagram's headers say.
	seq Sequence
	udp udpInfo
}

func (m *message) String() string {
	return fmt.Sprintf("%s %v -> %v %d bytes", m.proto, m.src, m.dst, len(m.raw))
}

// captureMessages returns every TCP frame and UDP datagram of capture nn,
// grouped by flow in capture order.
func captureMessages(t testing.TB, nn string) []*message {
	t.Helper()
	var out []*message
	for _, st := range captureStreams(t, nn) {
		for _, f := range tcpFrames(t, st.Data) {
			m := &message{proto: "TCP", src: st.Src, dst: st.Dst, raw: f}
			if _, _, err := DecodeTCP(&m.seq, f, 0); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
	}
	for _, p := range captureUDP(t, nn) {
		m := &message{proto: "UDP", src: p.Src, dst: p.Dst, raw: p.Payload}
		if isRawUDP(nn, p) {
			m.proto = "rawudp"
		} else {
			m.udp = parseUDPInfo(t, p.Payload)
		}
		out = append(out, m)
	}
	return out
}

// documented is one line of the capture index.
type documented struct {
	capture  string
	proto    string
	src, dst netip.AddrPort
	bytes    int
	id       uint64
	typ      int // -1 for "None" (a non-first fragment)
	name     string
	hasName  bool
	elements int
	gen      int // UDP only
	frag     [2]uint64
	line     int
}

var (
	reFlow     = regexp.MustCompile(`^(TCP|UDP) (\S+) -> (\S+)(?: \[(STK udp|rawudp)\])?$`)
	reTCPSum   = regexp.MustCompile(`^seq_id=(0x[0-9a-f]+)(?: [A-Z_]+)? type=(\d+)\(\w+\) name=(?:"([^"]*)"|(-)) elements=(\d+)$`)
	reUDPSum   = regexp.MustCompile(`^UDP seq_id=(0x[0-9a-f]+) gen=(\d+) frag (\d+)/(\d+) type=(\d+|None) name=(?:"([^"]*)"|(-)) elements=(\d+)$`)
	reRawSum   = regexp.MustCompile(`^rawudp payload (\d+) bytes$`)
	indexOnce  sync.Once
	indexRows  map[string][]documented
	indexElide map[string]int
	indexErr   error
)

func loadIndex(t testing.TB) (map[string][]documented, map[string]int) {
	t.Helper()
	indexOnce.Do(func() { indexRows, indexElide, indexErr = parseIndex(captureIndexFile) })
	if indexErr != nil {
		t.Fatal(indexErr)
	}
	return indexRows, indexElide
}
func parseIndex(path string) (map[string][]documented, map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	rows, elided := map[string][]documented{}, map[string]int{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || text[0] == '#' {
			continue
		}
		cols := strings.Split(text, " | ")
		bad := func(why string) error { return fmt.Errorf("%s:%d: %s: %q", path, line, why, text) }
		if len(cols) == 3 && cols[1] == "elided-smartbeats" {
			n, err := strconv.Atoi(cols[2])
			if err != nil {
				return nil, nil, bad("count")
			}
			elided[cols[0]] = n
			continue
		}
		if len(cols) != 4 {
			return nil, nil, bad("want 4 columns")
		}
		d := documented{capture: cols[0], line: line, typ: -1, gen: -1}
		fm := reFlow.FindStringSubmatch(cols[1])
		if fm == nil {
			return nil, nil, bad("flow")
		}
		d.proto = fm[1]
		if fm[4] == "rawudp" {
			d.proto = "rawudp"
		}
		if d.src, err = netip.ParseAddrPort(fm[2]); err != nil {
			return nil, nil, bad("src")
		}
		if d.dst, err = netip.ParseAddrPort(fm[3]); err != nil {
			return nil, nil, bad("dst")
		}
		if d.bytes, err = strconv.Atoi(cols[2]); err != nil {
			return nil, nil, bad("bytes")
		}
		sum := cols[3]
		switch d.proto {
		case "TCP":
			m := reTCPSum.FindStringSubmatch(sum)
			if m == nil {
				return nil, nil, bad("TCP summary")
			}
			d.id, _ = strconv.ParseUint(m[1][2:], 16, 64)
			d.typ, _ = strconv.Atoi(m[2])
			d.name, d.hasName = m[3], m[4] == ""
			d.elements, _ = strconv.Atoi(m[5])
		case "UDP":
			m := reUDPSum.FindStringSubmatch(sum)
			if m == nil {
				return nil, nil, bad("UDP summary")
			}
			d.id, _ = strconv.ParseUint(m[1][2:], 16, 64)
			d.gen, _ = strconv.Atoi(m[2])
			d.frag[0], _ = strconv.ParseUint(m[3], 10, 64)
			d.frag[1], _ = strconv.ParseUint(m[4], 10, 64)
			if m[5] != "None" {
				d.typ, _ = strconv.Atoi(m[5])
			}
			d.name, d.hasName = m[6], m[7] == "" && m[5] != "None"
			d.elements, _ = strconv.Atoi(m[8])
		case "rawudp":
			m := reRawSum.FindStringSubmatch(sum)
			if m == nil {
				return nil, nil, bad("rawudp summary")
			}
		}
		rows[d.capture] = append(rows[d.capture], d)
	}
	return rows, elided, sc.Err()
}

// matches reports whether message m is the documented message d.
func (d *documented) matches(m *message) bool {
	if d.proto != m.proto || d.src != m.src || d.dst != m.dst || d.bytes != len(m.raw) {
		return false
	}
	switch d.proto {
	case "TCP":
		s := &m.seq
		return s.ID == d.id && int(s.Type) == d.typ && s.Name == d.name &&
			(s.Name != "") == d.hasName && len(s.Elements) == d.elements
	case "UDP":
		u := &m.udp
		return u.id == d.id && int(u.gen) == d.gen && u.idx == d.frag[0] && u.nfrag == d.frag[1] &&
			u.typ == d.typ && u.name == d.name && u.hasName == d.hasName && u.nseg == d.elements
	}
	return true // rawudp: flow and size
}

var allCaptures = []string{
	"01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11",
	"12", "13", "14", "15", "16", "17", "18", "19", "20", "21",
}

// TestGoldenCaptureIndex checks every message of every capture against the
// message index of its annotated dump: each documented message must be
// found, in order within its flow, with the documented size, id, type, name,
// element count (and generation and fragment numbers for STK-UDP); the only
// messages the index leaves out are smartbeats, and their number is the one
// the dump gives.
func TestGoldenCaptureIndex(t *testing.T) {
	rows, elided := loadIndex(t)
	for _, nn := range allCaptures {
		t.Run(nn, func(t *testing.T) {
			msgs := captureMessages(t, nn)
			docs := rows[nn]
			if len(docs) == 0 {
				t.Fatal("no documented messages")
			}
			if got, want := len(msgs), len(docs)+elided[nn]; got != want {
				t.Errorf("%d messages in the capture, the dump documents %d and elides %d smartbeats", got, len(docs), elided[nn])
			}
			used := make([]bool, len(msgs))
			next := map[[2]netip.AddrPort]int{} // per flow: first message not yet matched or skipped
			for i := range docs {
				d := &docs[i]
				flow := [2]netip.AddrPort{d.src, d.dst}
				j := next[flow]
				for ; j < len(msgs); j++ {
					m := msgs[j]
					if m.src != d.src || m.dst != d.dst || (m.proto == "TCP") != (d.proto == "TCP") {
						continue
					}
					if d.matches(m) {
						break
					}
					if !isSmartbeat(m) {
						t.Fatalf("line %d: %v (id %#x) is neither documented nor a smartbeat", d.line, m, msgID(m))
					}
				}
				if j == len(msgs) {
					t.Fatalf("line %d: documented %s %v -> %v %d bytes id %#x not found", d.line, d.proto, d.src, d.dst, d.bytes, d.id)
				}
				used[j] = true
				next[flow] = j + 1
			}
			skipped := 0
			for j, m := range msgs {
				if used[j] {
					continue
				}
				if !isSmartbeat(m) {
					t.Errorf("%v (id %#x) is neither documented nor a smartbeat", m, msgID(m))
				}
				skipped++
			}
			if skipped != elided[nn] {
				t.Errorf("%d undocumented smartbeats, the dump elides %d", skipped, elided[nn])
			}
		})
	}
}
func msgID(m *message) uint64 {
	if m.proto == "UDP" {
		return m.udp.id
	}
	return m.seq.ID
}
func isSmartbeat(m *message) bool {
	return m.proto != "rawudp" && msgID(m) == IDSmartbeat
}

// publishPayload is the element the C publish example sends with -l n
// (captures 06-12): "default data" then the bytes of 0x0123456789abcdef
// repeated, the last two bytes replaced by de ad.
func publishPayload(n int) []byte {
	b := make([]byte, n)
	pattern := []byte{0x67, 0x45, 0x23, 0x01, 0xef, 0xcd, 0xab, 0x89}
	for i := range b {
		if i < 12 {
			b[i] = "default data"[i]
		} else {
			b[i] = pattern[(i-12)%8]
		}
	}
	if n >= 2 {
		b[n-2], b[n-1] = 0xde, 0xad
	}
	return b
}

// testProgramPayload is the element data of tcp/udp_data_flow_test
// (capture 16): 80 81 then 84 repeated.
func testProgramPayload(n int) []byte {
	b := bytes.Repeat([]byte{0x84}, n)
	copy(b, []byte{0x80, 0x81})
	return b
}

type wantElem struct {
	userType uint64
	data     []byte
}
type wantSeq struct {
	wire     int // TCP frame or total datagram bytes
	id       uint64
	typ      Type
	name     string
	gen      uint16 // STK-UDP only
	totalLen uint64 // STK-UDP only: frag0.total_len as the dump shows it
	elements []wantElem
}
type dataCapture struct {
	nn       string
	port     uint16    // data port
	tcp      []wantSeq // frames on TCP streams to or from port, in order
	udp      []wantSeq // sequences delivered from datagrams to port
	dgrams   []int     // their datagram sizes
	uniqueID uint32    // STK-UDP sender id
	raw      bool      // raw UDP
}

func repeatSeq(n int, s wantSeq) []wantSeq {
	out := make([]wantSeq, n)
	for i := range out {
		out[i] = s
	}
	return out
}
func genSeqs(s wantSeq, gens ...uint16) []wantSeq {
	out := make([]wantSeq, len(gens))
	for i, g := range gens {
		out[i] = s
		out[i].gen = g
	}
	return out
}

var dataCaptures = []dataCapture{
	{nn: "06", port: 29312, tcp: repeatSeq(3, wantSeq{wire: 69, id: 0x6a549557, typ: TypeData, name: "publish sequence",
		elements: []wantElem{{UTExampleData, []byte("default \xde\xad")}}})},
	{nn: "07", port: 29312, tcp: repeatSeq(2, wantSeq{wire: 1059, id: 0x1b157e66, typ: TypeData, name: "publish sequence",
		elements: []wantElem{{UTExampleData, publishPayload(1000)}}})},
	{nn: "08", port: 29312, tcp: []wantSeq{{wire: 70059, id: 0xffffffffdf4d7e0e, typ: TypeData, name: "publish sequence",
		elements: []wantElem{{UTExampleData, publishPayload(70000)}}}}},
	{nn: "09", port: 29312, uniqueID: 0x6b8b4567, dgrams: []int{109, 109, 109},
		udp: genSeqs(wantSeq{wire: 109, id: 0x73525a48, typ: TypeData, name: "publish sequence", totalLen: 184,
			elements: []wantElem{{UTExampleData, []byte("default \xde\xad")}}}, 1, 2, 3)},
	{nn: "10", port: 29312, raw: true, dgrams: []int{10, 10, 10},
		udp: repeatSeq(3, wantSeq{wire: 10, id: 0, typ: TypeData, name: "UDP",
			elements: []wantElem{{0, []byte("default \xde\xad")}}})},
	{nn: "11", port: 29312, uniqueID: 0x6b8b4567, dgrams: []int{65507, 4656},
		udp: []wantSeq{{wire: 65507 + 4656, id: 0xffffffffdf8e2087, typ: TypeData, name: "publish sequence", gen: 1, totalLen: 70139,
			elements: []wantElem{{UTExampleData, publishPayload(70000)}}}}},
	{nn: "12", port: 29312, uniqueID: 0x6b8b4567, dgrams: []int{109, 109, 109},
		udp: genSeqs(wantSeq{wire: 109, id: 0x2ca33666, typ: TypeData, name: "publish sequence", totalLen: 184,
			elements: []wantElem{{UTExampleData, []byte("default \xde\xad")}}}, 1, 2, 3)},
	{nn: "16", port: 29312,
		tcp: []wantSeq{
			{wire: 102, id: 0xfedcba98, typ: TypeData, name: "tcp_data_flow_test1",
				elements: []wantElem{{0x4e0, testProgramPayload(40)}}},
			{wire: 138, id: 0xfedcba98, typ: TypeData, name: "tcp_data_flow_test1",
				elements: []wantElem{{0x4e0, testProgramPayload(40)}, {0x4e2, testProgramPayload(20)}}},
		},
		uniqueID: 0x6b8b4567, dgrams: []int{142, 186, 78},
		udp: []wantSeq{
			{wire: 142, id: 0xfedcba80, typ: TypeData, name: "udp_data_flow_test1", gen: 1, totalLen: 220,
				elements: []wantElem{{0x4df, testProgramPayload(40)}}},
			{wire: 186, id: 0xfedcba80, typ: TypeData, name: "udp_data_flow_test1", gen: 2, totalLen: 406,
				elements: []wantElem{{0x4df, testProgramPayload(40)}, {0x4ef, testProgramPayload(20)}}},
			{wire: 78, id: 0xfedcba81, typ: TypeData, name: "udp_data_flow_test1", gen: 1, totalLen: 78},
		}},
	{nn: "17", port: 29312, tcp: repeatSeq(2, wantSeq{wire: 43, id: 0x220723ab, typ: TypeData, name: "publish sequence"})},
}

// documentedLead holds leading and trailing element bytes exactly as the
// dumps print them, to check publishPayload itself.
var documentedLead = map[string][2][]byte{
	"07": {unhexString("64 65 66 61 75 6c 74 20 64 61 74 61 67 45 23 01 ef cd ab 89"), unhexString("67 45 de ad")},
	"08": {unhexString("64 65 66 61 75 6c 74 20 64 61 74 61 67 45 23 01"), unhexString("ef cd ab 89 67 45 23 01 ef cd ab 89 67 45 de ad")},
	"11": {unhexString("64 65 66 61 75 6c 74 20 64 61 74 61 67 45 23 01"), unhexString("ef cd ab 89 67 45 23 01 ef cd ab 89 67 45 de ad")},
	"16": {unhexString("80 81 84 84 84 84 84 84 84 84 84 84 84 84 84 84"), unhexString("84 84 84 84")},
}

func checkSeq(t *testing.T, what string, got *Sequence, want *wantSeq) {
	t.Helper()
	if got.ID != want.id || got.Type != want.typ || got.Name != want.name || got.Generation != want.gen {
		t.Errorf("%s: got id %#x type %v name %q gen %d; want id %#x type %v name %q gen %d",
			what, got.ID, got.Type, got.Name, got.Generation, want.id, want.typ, want.name, want.gen)
	}
	if len(got.Elements) != len(want.elements) {
		t.Fatalf("%s: %d elements, want %d", what, len(got.Elements), len(want.elements))
	}
	for i, e := range got.Elements {
		w := want.elements[i]
		if e.UserType != w.userType || len(e.Data) != len(w.data) || !bytes.Equal(e.Data, w.data) {
			t.Errorf("%s: element %d: user type %#x, %d bytes % x...; want %#x, %d bytes % x...",
				what, i, e.UserType, len(e.Data), head(e.Data)[:min(len(e.Data), 16)],
				w.userType, len(w.data), w.data[:min(len(w.data), 16)])
		}
	}
}

// TestGoldenDataCaptures checks the data sequences of captures 06-12, 16
// and 17 field by field: TCP frames with DecodeTCP, STK-UDP datagrams
// with a Reassembler, raw UDP with DecodeRawUDP, then re-encodes them.
func TestGoldenDataCaptures(t *testing.T) {
	for _, dc := range dataCaptures {
		t.Run(dc.nn, func(t *testing.T) {
			if lead, ok := documentedLead[dc.nn]; ok {
				var e []byte
				if len(dc.tcp) > 0 {
					e = dc.tcp[0].elements[0].data
				} else {
					e = dc.udp[0].elements[0].data
				}
				if !bytes.HasPrefix(e, lead[0]) || !bytes.HasSuffix(e, lead[1]) {
					t.Fatalf("expected payload % x ... % x does not match the dump", head(e)[:16], e[len(e)-4:])
				}
			}
			// TCP: frames on the streams from or to the data port.
			var frames [][]byte
			for _, st := range captureStreams(t, dc.nn) {
				if st.Src.Port() == dc.port || st.Dst.Port() == dc.port {
					frames = append(frames, tcpFrames(t, st.Data)...)
				}
			}
			if len(frames) != len(dc.tcp) {
				t.Fatalf("%d TCP frames on port %d, want %d", len(frames), dc.port, len(dc.tcp))
			}
			var s Sequence
			for i, f := range frames {
				w := &dc.tcp[i]
				if len(f) != w.wire {
					t.Errorf("frame %d: %d bytes, want %d", i, len(f), w.wire)
				}
				flags := binary.LittleEndian.Uint32(f[4:])
				wantFlags := uint32(0)
				if w.name != "" {
					wantFlags |= 2
				}
				if len(w.elements) > 0 {
					wantFlags |= 1
				}
				if flags != wantFlags || !bytes.Equal(f[:4], []byte{1, 0, 1, 0}) {
					t.Errorf("frame %d: version/flags % x, want flags %#x", i, f[:8], wantFlags)
				}
				n, need, err := DecodeTCP(&s, f, 0)
				if n != len(f) || need != 0 || err != nil {
					t.Fatalf("frame %d: DecodeTCP = %d, %d, %v", i, n, need, err)
				}
				checkSeq(t, fmt.Sprintf("frame %d", i), &s, w)
				out, err := AppendTCP([]byte("prefix"), &s)
				if err != nil || string(out[:6]) != "prefix" || !bytes.Equal(out[6:], f) {
					t.Fatalf("frame %d: AppendTCP = %v\n got % x\nwant % x", i, err, head(out), head(f))
				}
				// A fresh sequence built from the documented fields encodes the same.
				built := New(w.id, w.name, w.typ)
				for _, e := range w.elements {
					built.Add(e.userType, e.data)
				}
				if out, err := AppendTCP(nil, built); err != nil || !bytes.Equal(out, f) {
					t.Fatalf("frame %d: AppendTCP of the documented sequence differs (%v)", i, err)
				}
			}

			// UDP datagrams to the data port.
			var dgrams []pcap.Packet
			for _, p := range captureUDP(t, dc.nn) {
				if p.Dst.Port() == dc.port {
					dgrams = append(dgrams, p)
				}
			}
			if len(dgrams) != len(dc.dgrams) {
				t.Fatalf("%d datagrams to port %d, want %d", len(dgrams), dc.port, len(dc.dgrams))
			}
			for i, p := range dgrams {
				if len(p.Payload) != dc.dgrams[i] {
					t.Errorf("datagram %d: %d bytes, want %d", i, len(p.Payload), dc.dgrams[i])
				}
			}
			if dc.raw {
				for i, p := range dgrams {
					DecodeRawUDP(&s, p.Payload, DefaultRawUDPConfig)
					checkSeq(t, fmt.Sprintf("datagram %d", i), &s, &dc.udp[i])
					payload, ok, err := RawUDPPayload(&s)
					if !ok || err != nil || !bytes.Equal(payload, p.Payload) {
						t.Errorf("datagram %d: RawUDPPayload = % x, %v, %v", i, payload, ok, err)
					}
					cfg := RawUDPConfig{ID: 7, Type: TypeMgmt, Name: "raw", UserType: 0x135}
					DecodeRawUDP(&s, p.Payload, cfg)
					if s.ID != 7 || s.Type != TypeMgmt || s.Name != "raw" || len(s.Elements) != 1 ||
						s.Elements[0].UserType != 0x135 || !bytes.Equal(s.Elements[0].Data, p.Payload) {
						t.Errorf("datagram %d with %+v: %v", i, cfg, &s)
					}
				}
				return
			}
			checkUDPData(t, dc, dgrams, false)
			checkUDPData(t, dc, dgrams, true)
		})
	}
}

// checkUDPData reassembles dgrams (in capture order, or reversed and with
// every datagram duplicated) and checks the sequences and their re-encoding.
func checkUDPData(t *testing.T, dc dataCapture, dgrams []pcap.Packet, shuffle bool) {
	t.Helper()
	feed := dgrams
	if shuffle {
		feed = nil
		for i := len(dgrams) - 1; i >= 0; i-- {
			feed = append(feed, dgrams[i], dgrams[i])
		}
	}
	r := NewReassembler(ReassemblerConfig{MaxSize: 1 << 20})
	var got []*Sequence
	var s Sequence
	for i, p := range feed {
		info := parseUDPInfo(t, p.Payload)
		if info.uniqueID != dc.uniqueID {
			t.Errorf("datagram %d: unique_id %#x, want %#x", i, info.uniqueID, dc.uniqueID)
		}
		done, err := r.Add(&s, p.Src, p.Payload, p.Time)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if done {
			got = append(got, s.Clone())
		}
	}
	want := dc.udp
	if shuffle {
		// Reversed and duplicated: a single-fragment sequence comes twice,
		// a fragmented one once.
		want = nil
		for i := len(dc.udp) - 1; i >= 0; i-- {
			want = append(want, dc.udp[i])
			if dc.udp[i].wire <= MRU {
				want = append(want, dc.udp[i])
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("shuffled=%v: %d sequences, want %d", shuffle, len(got), len(want))
	}
	if shuffle {
		for i := range got {
			checkSeq(t, fmt.Sprintf("shuffled sequence %d", i), got[i], &want[i])
		}
		return
	}
	next := 0
	for i := range got {
		w := &want[i]
		checkSeq(t, fmt.Sprintf("sequence %d", i), got[i], w)
		var out [][]byte
		_, err := AppendUDP(nil, got[i], dc.uniqueID, func(d []byte) error {
			if len(d) > MRU {
				t.Errorf("datagram of %d bytes", len(d))
			}
			out = append(out, bytes.Clone(d))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for k, d := range out {
			total += len(d)
			if next >= len(dgrams) || !bytes.Equal(d, dgrams[next].Payload) {
				t.Fatalf("sequence %d fragment %d differs from the captured datagram", i, k)
			}
			next++
		}
		if total != w.wire {
			t.Errorf("sequence %d: %d datagram bytes, want %d", i, total, w.wire)
		}
		if tl := binary.LittleEndian.Uint64(out[0][40:]); tl != w.totalLen {
			t.Errorf("sequence %d: total_len %d, want %d", i, tl, w.totalLen)
		}
		// Decoding the single-fragment ones without a Reassembler.
		if len(out) == 1 {
			var d Sequence
			if err := DecodeUDP(&d, out[0]); err != nil {
				t.Fatal(err)
			}
			checkSeq(t, fmt.Sprintf("DecodeUDP sequence %d", i), &d, w)
		} else if err := DecodeUDP(&s, out[0]); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeUDP of fragment 0 of %d: %v, want ErrMalformed", len(out), err)
		}
	}
	if next != len(dgrams) {
		t.Errorf("re-encoded %d datagrams, captured %d", next, len(dgrams))
	}
}
