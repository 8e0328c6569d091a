package stepbus

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/stk-go/stk/step"
)

// maxFrame bounds the uncompressed bytes of one frame: a burst is written
// in several frames instead of being held until the next tick.
const maxFrame = 1 << 20

// segment file names: steps-20261122T053000Z.jsonl.zst, or with "-N"
// before ".jsonl" when several segments start in the same second.
const (
	segPrefix     = "steps-"
	segSuffix     = ".jsonl.zst"
	segTimeLayout = "20060102T150405Z"
)

// archive writes accepted STEPs to the segment files; one goroutine owns
// the file and the buffers.
type archive struct {
	dir      string
	maxBytes int64
	maxAge   time.Duration
	keep     int
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger

	q     chan *step.Step
	flush chan chan struct{} // tests: flush now and report
	stop  chan struct{}
	done  chan struct{}

	// The writer goroutine's own state.
	enc      *zstd.Encoder
	buf      bytes.Buffer // JSON lines not yet written
	jenc     *json.Encoder
	frame    []byte
	bufSteps int
	f        *os.File
	segName  string
	segStart time.Time
	segRaw   int64 // uncompressed bytes in the current segment
	segSize  int64 // compressed bytes in the current segment
	encLog   time.Time

	pending atomic.Int64 // STEPs in buf
	written atomic.Uint64
	dropped atomic.Uint64

	mu       sync.Mutex // the stats below
	segments int
	bytes    int64 // of the closed segments
	errors   uint64
	lastErr  string
	failedAt time.Time // of the last failure
	lastAt   time.Time
	repaired int64
	current  string
}

// openArchive creates cfg.ArchiveDir if needed, repairs its newest
// segment and starts the writer.
func openArchive(cfg Config, log *slog.Logger) (*archive, error) {
	if err := os.MkdirAll(cfg.ArchiveDir, 0o750); err != nil {
		return nil, fmt.Errorf("stepbus: archive directory: %w", err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true),
		zstd.WithWindowSize(maxFrame), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("stepbus: archive: %w", err)
	}
	a := &archive{
		dir: cfg.ArchiveDir, maxBytes: cfg.ArchiveMaxBytes, maxAge: cfg.ArchiveMaxAge,
		keep: cfg.ArchiveKeep, interval: cfg.FlushInterval, now: cfg.Now, log: log,
		q:     make(chan *step.Step, cfg.ArchiveQueue),
		flush: make(chan chan struct{}),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		enc:   enc,
	}
	a.jenc = json.NewEncoder(&a.buf)
	segs, err := Segments(a.dir)
	if err != nil {
		return nil, err
	}
	for _, p := range lastWritten(segs) {
		cut, err := RepairSegment(p)
		if err != nil {
			return nil, fmt.Errorf("stepbus: archive: %w", err)
		}
		if cut > 0 {
			a.repaired += cut
			log.Warn("archive segment had a torn last frame (the process was killed while writing); cut it off",
				"file", p, "bytes_cut", cut)
		}
	}
	a.countSegments()
	go a.run()
	return a, nil
}

// enqueue hands s to the writer, or drops it when the queue is full.
func (a *archive) enqueue(s *step.Step) {
	select {
	case a.q <- s:
	default:
		a.dropped.Add(1)
	}
}

func (a *archive) run() {
	defer close(a.done)
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		select {
		case s := <-a.q:
			a.add(s)
		case <-t.C:
			a.write()
		case ack := <-a.flush:
			a.drain()
			a.write()
			close(ack)
		case <-a.stop:
			a.drain()
			a.write()
			a.closeSegment()
			return
		}
	}
}

// drain adds everything queued now.
func (a *archive) drain() {
	for {
		select {
		case s := <-a.q:
			a.add(s)
		default:
			return
		}
	}
}

// add appends s's JSON line to the buffer, writing a frame early when the
// buffer is full or the segment would pass its size.
func (a *archive) add(s *step.Step) {
	if err := a.jenc.Encode(s); err != nil {
		a.dropped.Add(1)
		if now := time.Now(); now.Sub(a.encLog) >= time.Second {
			a.encLog = now
			a.log.Warn("STEP not archived: no JSON form", "id", s.ID, "type", s.Event.Type, "err", err)
		}
		return
	}
	a.bufSteps++
	a.pending.Store(int64(a.bufSteps))
	if a.buf.Len() >= maxFrame || a.segRaw+int64(a.buf.Len()) >= a.maxBytes {
		a.write()
	}
}

// write appends the buffered lines to the current segment as one zstd
// frame and syncs it, rotating the segment first when it is full or old.
func (a *archive) write() {
	now := a.now()
	if a.f != nil && (a.segRaw >= a.maxBytes || now.Sub(a.segStart) >= a.maxAge) {
		a.closeSegment()
	}
	if a.buf.Len() == 0 {
		return
	}
	n := a.bufSteps
	defer func() {
		a.buf.Reset()
		if a.buf.Cap() > 4*maxFrame {
			a.buf = bytes.Buffer{} // a burst's buffer is not kept
		}
		a.bufSteps = 0
		a.pending.Store(0)
	}()
	if a.f == nil {
		if err := a.openSegment(now); err != nil {
			a.failed(n, err)
			return
		}
	}
	a.frame = a.enc.EncodeAll(a.buf.Bytes(), a.frame[:0])
	if _, err := a.f.Write(a.frame); err != nil {
		// Cut a partly written frame off, so the file stays readable, and
		// start a new segment next time.
		a.f.Truncate(a.segSize)
		a.closeSegment()
		a.failed(n, err)
		return
	}
	syncErr := a.f.Sync()
	a.segRaw += int64(a.buf.Len())
	a.segSize += int64(len(a.frame))
	a.written.Add(uint64(n))
	if cap(a.frame) > 4*maxFrame {
		a.frame = nil
	}
	a.mu.Lock()
	a.lastAt = now
	a.failedAt = time.Time{} // written: healthy again
	a.mu.Unlock()
	if syncErr != nil {
		a.failed(0, fmt.Errorf("sync: %w", syncErr))
	}
	if a.segRaw >= a.maxBytes {
		a.closeSegment()
	}
}

// failed counts a write error that lost n STEPs.
func (a *archive) failed(n int, err error) {
	a.dropped.Add(uint64(n))
	a.mu.Lock()
	a.errors++
	first := a.lastErr != err.Error()
	a.lastErr = err.Error()
	a.failedAt = time.Now()
	a.mu.Unlock()
	if first {
		a.log.Error("archive write failed", "err", err, "steps_lost", n)
	}
}

// openSegment creates a new segment named by now.
func (a *archive) openSegment(now time.Time) error {
	base := segPrefix + now.UTC().Format(segTimeLayout)
	for i := 0; ; i++ {
		name := base + segSuffix
		if i > 0 {
			name = base + "-" + strconv.Itoa(i) + segSuffix
		}
		f, err := os.OpenFile(filepath.Join(a.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
		if errors.Is(err, os.ErrExist) && i < 1000 {
			continue
		}
		if err != nil {
			return fmt.Errorf("new segment: %w", err)
		}
		a.f, a.segName, a.segStart, a.segRaw, a.segSize = f, name, now, 0, 0
		a.mu.Lock()
		a.current = name
		a.segments++
		a.mu.Unlock()
		syncDir(a.dir)
		return nil
	}
}

// closeSegment closes the current segment and deletes the oldest ones
// beyond keep.
func (a *archive) closeSegment() {
	if a.f == nil {
		return
	}
	if err := a.f.Close(); err != nil {
		a.failed(0, fmt.Errorf("close %s: %w", a.segName, err))
	}
	a.f = nil
	a.mu.Lock()
	a.current = ""
	a.mu.Unlock()
	segs, err := Segments(a.dir)
	if err != nil {
		a.failed(0, err)
		return
	}
	for len(segs) > a.keep {
		if err := os.Remove(segs[0]); err != nil && !errors.Is(err, os.ErrNotExist) {
			a.failed(0, err)
			break
		}
		a.log.Debug("old archive segment deleted", "file", segs[0])
		segs = segs[1:]
	}
	a.countSegments()
}

// countSegments refreshes the count and size of the closed segments.
func (a *archive) countSegments() {
	segs, _ := Segments(a.dir)
	var total int64
	for _, p := range segs {
		if filepath.Base(p) == a.segName && a.f != nil {
			continue
		}
		if fi, err := os.Stat(p); err == nil {
			total += fi.Size()
		}
	}
	a.mu.Lock()
	a.segments, a.bytes = len(segs), total
	a.mu.Unlock()
}

// sync writes what is queued now and waits for it (tests).
func (a *archive) sync() {
	ack := make(chan struct{})
	select {
	case a.flush <- ack:
		<-ack
	case <-a.done:
	}
}

func (a *archive) close() error {
	close(a.stop)
	<-a.done
	a.enc.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lastErr != "" {
		return fmt.Errorf("stepbus: archive: %d write error(s), the last: %s", a.errors, a.lastErr)
	}
	return nil
}

func (a *archive) stats() ArchiveStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := ArchiveStats{
		Enabled: true, Dir: a.dir, Segment: a.current, Segments: a.segments,
		Bytes: a.bytes, Written: a.written.Load(), Pending: len(a.q) + int(a.pending.Load()),
		Dropped: a.dropped.Load(), Errors: a.errors, LastError: a.lastErr, LastFlush: a.lastAt,
		Repaired: a.repaired, Failing: !a.failedAt.IsZero(),
	}
	if a.current != "" {
		if fi, err := os.Stat(filepath.Join(a.dir, a.current)); err == nil {
			st.Bytes += fi.Size()
		}
	}
	return st
}

// lastWritten returns the segments a crash may have left torn: the newest
// by name and, if the clock was set back since, the one modified last.
func lastWritten(segs []string) []string {
	if len(segs) == 0 {
		return nil
	}
	out := []string{segs[len(segs)-1]}
	var latest string
	var at time.Time
	for _, p := range segs {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(at) {
			latest, at = p, fi.ModTime()
		}
	}
	if latest != "" && latest != out[0] {
		out = append(out, latest)
	}
	return out
}

// syncDir makes a new file's directory entry durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// segmentKey parses a segment file name into its start time text and
// sequence number; ok is false for other files.
func segmentKey(name string) (ts string, n int, ok bool) {
	rest, found := strings.CutPrefix(name, segPrefix)
	if !found {
		return "", 0, false
	}
	if rest, found = strings.CutSuffix(rest, segSuffix); !found {
		return "", 0, false
	}
	ts, num, hasNum := strings.Cut(rest, "-")
	if _, err := time.Parse(segTimeLayout, ts); err != nil {
		return "", 0, false
	}
	if hasNum {
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return "", 0, false
		}
		n = v
	}
	return ts, n, true
}

// Segments returns the paths of the archive segments in dir, oldest
// first.
func Segments(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("stepbus: archive: %w", err)
	}
	type seg struct {
		name string
		ts   string
		n    int
	}
	var segs []seg
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if ts, n, ok := segmentKey(e.Name()); ok {
			segs = append(segs, seg{e.Name(), ts, n})
		}
	}
	slices.SortFunc(segs, func(x, y seg) int {
		if c := cmp.Compare(x.ts, y.ts); c != 0 {
			return c
		}
		return cmp.Compare(x.n, y.n)
	})
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = filepath.Join(dir, s.name)
	}
	return out, nil
}

// ReadSegment calls fn with every STEP of the segment file at path, in
// the order they were written. It stops at fn's first error and returns
// it. A segment that ends in a torn frame yields the STEPs before it and
// then an error.
func ReadSegment(path string, fn func(*step.Step) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("stepbus: %w", err)
	}
	defer f.Close()
	d, err := newArchiveDecoder(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		return fmt.Errorf("stepbus: %s: %w", path, err)
	}
	defer d.Close()
	sc := bufio.NewScanner(d)
	sc.Buffer(make([]byte, 0, 64<<10), step.MaxJSONSize+1024)
	for line := 1; sc.Scan(); line++ {
		s, err := step.Parse(sc.Bytes())
		if err != nil {
			return fmt.Errorf("stepbus: %s line %d: %w", path, line, err)
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("stepbus: %s: %w", path, err)
	}
	return nil
}

// ReadArchive calls fn with every STEP of every segment in dir, oldest
// segment first. It stops at the first error.
func ReadArchive(dir string, fn func(*step.Step) error) error {
	segs, err := Segments(dir)
	if err != nil {
		return err
	}
	for _, p := range segs {
		if err := ReadSegment(p, fn); err != nil {
			return err
		}
	}
	return nil
}

// RepairSegment cuts off whatever follows the last complete, decodable
// zstd frame of the file at path (a frame torn by a crash) and returns how
// many bytes it cut. An empty or wholly unreadable file is removed.
func RepairSegment(path string) (cut int64, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	good := validFrames(data)
	if good == len(data) && good > 0 {
		return 0, nil
	}
	if good == 0 {
		if err := os.Remove(path); err != nil {
			return 0, err
		}
		return int64(len(data)), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Truncate(int64(good)); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return int64(len(data) - good), nil
}

// newArchiveDecoder returns a zstd decoder for archive segments. Our
// frames hold at most maxFrame bytes plus one batch, so a frame whose
// header claims much more is damage: the limits refuse it instead of
// allocating what the header claims.
func newArchiveDecoder(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8*maxFrame),
		zstd.WithDecoderMaxMemory(8*maxFrame))
}

// validFrames returns the length of the longest prefix of data made of
// complete zstd frames that decode.
func validFrames(data []byte) int {
	d, err := newArchiveDecoder(nil)
	if err != nil {
		return 0
	}
	defer d.Close()
	var scratch []byte
	off := 0
	for off < len(data) {
		n, skippable := frameLen(data[off:])
		if n <= 0 {
			break
		}
		if !skippable {
			if scratch, err = d.DecodeAll(data[off:off+n], scratch[:0]); err != nil {
				break
			}
		}
		off += n
	}
	return off
}

// frameLen returns the length of the zstd frame at the start of b (RFC
// 8878 §3.1), or 0 if b does not start with a complete frame.
func frameLen(b []byte) (n int, skippable bool) {
	if len(b) < 4 {
		return 0, false
	}
	magic := binary.LittleEndian.Uint32(b)
	if magic&0xFFFFFFF0 == 0x184D2A50 { // skippable frame
		if len(b) < 8 {
			return 0, false
		}
		size := int64(binary.LittleEndian.Uint32(b[4:]))
		if 8+size > int64(len(b)) {
			return 0, false
		}
		return 8 + int(size), true
	}
	if magic != 0xFD2FB528 {
		return 0, false
	}
	if len(b) < 5 {
		return 0, false
	}
	fhd := b[4]
	single := fhd&0x20 != 0
	if fhd&0x08 != 0 { // reserved bit
		return 0, false
	}
	hdr := 1
	if !single {
		hdr++ // window descriptor
	}
	hdr += [4]int{0, 1, 2, 4}[fhd&3] // dictionary id
	switch fhd >> 6 {                // frame content size
	case 0:
		if single {
			hdr++
		}
	case 1:
		hdr += 2
	case 2:
		hdr += 4
	case 3:
		hdr += 8
	}
	off := 4 + hdr
	for {
		if off+3 > len(b) {
			return 0, false
		}
		bh := uint32(b[off]) | uint32(b[off+1])<<8 | uint32(b[off+2])<<16
		off += 3
		last := bh&1 != 0
		size := int(bh >> 3)
		switch (bh >> 1) & 3 {
		case 1: // RLE: one byte repeated size times
			size = 1
		case 3:
			return 0, false // reserved block type
		}
		if off+size > len(b) {
			return 0, false
		}
		off += size
		if last {
			break
		}
	}
	if fhd&0x04 != 0 { // content checksum
		off += 4
		if off > len(b) {
			return 0, false
		}
	}
	return off, false
}
