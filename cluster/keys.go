package cluster

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stk-go/stk/flow"
	"github.com/stk-go/stk/namesvc"
	"github.com/stk-go/stk/seq"
)

// Key layout (under Config.Prefix, default "/stk/"; docs/cluster.md):
//
//	<prefix>names/<group>/<name>/<node>/<serial>   one registration
//	<prefix>nodes/<node>                           one node
//	<prefix>probes/<node>                          a run asking whether the node's holder is alive
//
// Every part is URL path-escaped (so "/" and "%" in a name cannot
// split it; the default group is the empty part), the serial is 16 hex
// digits, so that a node's registrations of a name sort in serial
// order. Both kinds of key are written under the writing node's lease:
// when the node dies, etcd deletes them within the lease TTL.

const (
	namesDir  = "names/"
	nodesDir  = "nodes/"
	probesDir = "probes/"
)

// regValue is the JSON value of a registration key written by the first
// builds (decodeReg still reads it); values are binary now (appendReg).
type regValue struct {
	// E are the stored elements, in order: user type and data.
	E []elemValue `json:"e"`
	// L is the linger in nanoseconds.
	L int64 `json:"l"`
	// R is the registrant's address and T the transport it came over.
	R string `json:"r,omitempty"`
	T string `json:"t,omitempty"`
	// At is when the node stored it and W when the node wrote it to etcd
	// (Unix nanoseconds; W gives the propagation lag).
	At int64 `json:"at"`
	W  int64 `json:"w"`
	// X is when it goes, once it lingers (its registrant gone; Unix
	// nanoseconds); absent while its registrant is there. The other nodes
	// stop answering it then, as its node does.
	X int64 `json:"x,omitempty"`
}

type elemValue struct {
	T uint64 `json:"t"`
	D []byte `json:"d"`
}

// nodeValue is the JSON value of a node key.
type nodeValue struct {
	Node    string `json:"node"`
	Lease   int64  `json:"lease"`
	Started int64  `json:"started"` // Unix nanoseconds
	PID     int    `json:"pid,omitempty"`
	Host    string `json:"host,omitempty"`
	// Instance tells the node's runs apart (random, per process).
	Instance string `json:"instance,omitempty"`
	// Refuted answers another run's probe of this node id: its
	// Instance. That run refuses to join.
	Refuted string `json:"refuted,omitempty"`
}

// probeValue is the JSON value of a probe key: a run that found its node
// id held by another run, asking whether that run is alive.
type probeValue struct {
	Instance string `json:"instance"`
	Host     string `json:"host,omitempty"`
	PID      int    `json:"pid,omitempty"`
}

func esc(s string) string { return url.PathEscape(s) }

// nameKey returns the key of registration serial of node.
func nameKey(prefix, group, name, node string, serial uint64) string {
	var b strings.Builder
	g, n, o := esc(group), esc(name), esc(node)
	b.Grow(len(prefix) + len(namesDir) + len(g) + len(n) + len(o) + 3 + 16)
	b.WriteString(prefix)
	b.WriteString(namesDir)
	b.WriteString(g)
	b.WriteByte('/')
	b.WriteString(n)
	b.WriteByte('/')
	b.WriteString(o)
	b.WriteByte('/')
	var hex [16]byte
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		hex[i] = digits[serial&0xf]
		serial >>= 4
	}
	b.Write(hex[:])
	return b.String()
}

func nodeKey(prefix, node string) string { return prefix + nodesDir + esc(node) }

func probeKey(prefix, node string) string { return prefix + probesDir + esc(node) }

// parseNameKey splits a registration key (without the prefix and
// namesDir).
func parseNameKey(rest string) (namesvc.RemoteKey, error) {
	parts := strings.Split(rest, "/")
	if len(parts) != 4 {
		return namesvc.RemoteKey{}, fmt.Errorf("registration key %q: want group/name/node/serial", rest)
	}
	var k namesvc.RemoteKey
	var err error
	for i, dst := range []*string{&k.Group, &k.Name, &k.Node} {
		if *dst, err = url.PathUnescape(parts[i]); err != nil {
			return k, fmt.Errorf("registration key %q: %w", rest, err)
		}
	}
	if k.Serial, err = strconv.ParseUint(parts[3], 16, 64); err != nil {
		return k, fmt.Errorf("registration key %q: serial: %w", rest, err)
	}
	return k, nil
}

// regFormat is the first byte of a registration value in the binary
// format: a JSON value (of the first builds) starts with '{'.
const regFormat = 1

// appendReg appends the value of c's key, written at w, to buf:
//
//	0x01                        format
//	varint at, w, x, linger     Unix nanoseconds (x 0: not lingering); linger in ns
//	byte transport              flow.Protocol
//	uvarint n, n bytes          the registrant (netip.AddrPort's binary form)
//	uvarint count               then per element: uvarint user type, uvarint n, n bytes
//
// It is about five times cheaper to decode than JSON with base64 (the
// watch decodes every other node's registration), and half the size.
func appendReg(buf []byte, c namesvc.LocalChange, w time.Time) []byte {
	r := c.Reg
	var x int64
	if !c.Expires.IsZero() {
		x = c.Expires.UnixNano()
	}
	buf = append(buf, regFormat)
	buf = binary.AppendVarint(buf, r.Registered.UnixNano())
	buf = binary.AppendVarint(buf, w.UnixNano())
	buf = binary.AppendVarint(buf, x)
	buf = binary.AppendVarint(buf, int64(r.Linger))
	buf = append(buf, byte(r.Transport))
	if r.Registrant.IsValid() {
		b, _ := r.Registrant.MarshalBinary() // cannot fail
		buf = binary.AppendUvarint(buf, uint64(len(b)))
		buf = append(buf, b...)
	} else {
		buf = binary.AppendUvarint(buf, 0)
	}
	buf = binary.AppendUvarint(buf, uint64(len(r.Elements)))
	for _, e := range r.Elements {
		buf = binary.AppendUvarint(buf, e.UserType)
		buf = binary.AppendUvarint(buf, uint64(len(e.Data)))
		buf = append(buf, e.Data...)
	}
	return buf
}

// encodeReg is the value of c's key, written at w.
func encodeReg(c namesvc.LocalChange, w time.Time) []byte { return appendReg(nil, c, w) }

var errShortReg = errors.New("truncated value")

// decodeReg makes the change of key k from its value b (the binary
// format, or the JSON one of the first builds); written is when its node
// wrote it. The registration's element data alias b: b must not change
// afterwards.
func decodeReg(k namesvc.RemoteKey, b []byte) (c namesvc.RemoteChange, written time.Time, err error) {
	if len(b) > 0 && b[0] == '{' {
		return decodeRegJSON(k, b)
	}
	if len(b) == 0 || b[0] != regFormat {
		return c, time.Time{}, fmt.Errorf("registration %s/%s of node %s: unknown value format (a newer node?)", k.Group, k.Name, k.Node)
	}
	d := regDecoder{b: b[1:]}
	at, w, x, linger := d.varint(), d.varint(), d.varint(), d.varint()
	tr := d.byte()
	ra := d.bytes()
	ne := d.uvarint()
	if d.err == nil && ne > uint64(len(d.b)) { // each element takes two bytes at least
		d.err = errShortReg
	}
	var elems []seq.Element
	if d.err == nil {
		elems = make([]seq.Element, ne)
		for i := range elems {
			elems[i].UserType = d.uvarint()
			elems[i].Data = d.bytes()
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes left over", len(d.b))
	}
	if d.err != nil {
		return c, time.Time{}, fmt.Errorf("registration %s/%s of node %s: %w", k.Group, k.Name, k.Node, d.err)
	}
	r := &namesvc.Registration{Name: k.Name, Group: k.Group, Elements: elems,
		Linger: time.Duration(linger), Registered: time.Unix(0, at), Transport: flow.Protocol(tr)}
	if len(ra) > 0 {
		r.Registrant.UnmarshalBinary(ra) // informative only
	}
	c = namesvc.RemoteChange{Key: k, Reg: r}
	if x != 0 {
		c.Expires = time.Unix(0, x)
	}
	return c, time.Unix(0, w), nil
}

// regDecoder reads a binary registration value; the first error sticks.
type regDecoder struct {
	b   []byte
	err error
}

func (d *regDecoder) varint() int64   { return readVarint(d, binary.Varint) }
func (d *regDecoder) uvarint() uint64 { return readVarint(d, binary.Uvarint) }

// readVarint reads one varint of d with decode (binary.Varint or
// binary.Uvarint).
func readVarint[T int64 | uint64](d *regDecoder, decode func([]byte) (T, int)) T {
	if d.err != nil {
		return 0
	}
	v, n := decode(d.b)
	if n <= 0 {
		d.err = errShortReg
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *regDecoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = cmp.Or(d.err, errShortReg)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *regDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = cmp.Or(d.err, errShortReg)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// decodeRegJSON decodes the JSON value of the first builds.
func decodeRegJSON(k namesvc.RemoteKey, b []byte) (c namesvc.RemoteChange, written time.Time, err error) {
	var v regValue
	if err := json.Unmarshal(b, &v); err != nil {
		return c, time.Time{}, fmt.Errorf("registration %s/%s of node %s: %w", k.Group, k.Name, k.Node, err)
	}
	r := &namesvc.Registration{Name: k.Name, Group: k.Group, Elements: make([]seq.Element, len(v.E)),
		Linger: time.Duration(v.L), Registered: time.Unix(0, v.At)}
	for i, e := range v.E {
		r.Elements[i] = seq.Element{UserType: e.T, Data: e.D}
	}
	if v.R != "" {
		r.Registrant, _ = netip.ParseAddrPort(v.R) // informative only
	}
	r.Transport, _ = flow.ParseProtocol(v.T)
	c = namesvc.RemoteChange{Key: k, Reg: r}
	if v.X != 0 {
		c.Expires = time.Unix(0, v.X)
	}
	return c, time.Unix(0, v.W), nil
}

// ParseURL parses the --cluster value: "etcd://host:port[,host:port...]"
// (a bare "host:port,..." list is accepted too) into etcd client
// endpoints.
func ParseURL(s string) ([]string, error) {
	rest, ok := strings.CutPrefix(s, "etcd://")
	if !ok && strings.Contains(s, "://") {
		return nil, fmt.Errorf("cluster %q: only etcd://host:port[,host:port...] is supported", s)
	}
	var eps []string
	for _, hp := range strings.Split(rest, ",") {
		hp = strings.TrimSpace(hp)
		if hp == "" {
			continue
		}
		if _, _, err := splitHostPort(hp); err != nil {
			return nil, fmt.Errorf("cluster %q: endpoint %q: %w (want host:port)", s, hp, err)
		}
		eps = append(eps, "http://"+hp)
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("cluster %q: no endpoint (want etcd://host:port[,host:port...])", s)
	}
	return eps, nil
}

func splitHostPort(hp string) (string, int, error) {
	i := strings.LastIndexByte(hp, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("missing port")
	}
	p, err := strconv.Atoi(hp[i+1:])
	if err != nil || p <= 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port %q", hp[i+1:])
	}
	return hp[:i], p, nil
}
