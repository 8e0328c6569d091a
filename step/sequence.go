package step

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/stk-go/stk/seq"
)

// IDStep is the sequence id of every STEP sequence; Name is its name.
const (
	IDStep uint64 = 0x53544550 // "STEP"
	Name          = "step"
)

// Element user types of a STEP sequence (see the package documentation).
const (
	UTID          uint64 = 0x53540001
	UTStart       uint64 = 0x53540002
	UTEnd         uint64 = 0x53540003
	UTDuration    uint64 = 0x53540004
	UTType        uint64 = 0x53540005
	UTDescription uint64 = 0x53540006
	UTHostname    uint64 = 0x53540007
	UTIP          uint64 = 0x53540008
	UTFields      uint64 = 0x53540009
	UTValence     uint64 = 0x5354000a
	UTIntensity   uint64 = 0x5354000b
)

// IsStep reports whether q is a STEP sequence.
func IsStep(q *seq.Sequence) bool { return q.ID == IDStep }

// Encode fills dst (reset first) with s. The sequence owns its element
// buffers, so s may change afterwards.
func Encode(dst *seq.Sequence, s *Step) error {
	dst.Reset()
	dst.ID, dst.Name, dst.Type = IDStep, Name, seq.TypeData
	dst.AddCString(UTID, s.ID)
	dst.AddUint64(UTStart, uint64(s.Time.Start))
	if s.Time.End != 0 {
		dst.AddUint64(UTEnd, uint64(s.Time.End))
	}
	if s.Time.Duration != 0 {
		dst.AddUint64(UTDuration, uint64(s.Time.Duration))
	}
	dst.AddCString(UTType, s.Event.Type)
	if s.Event.Description != "" {
		dst.AddCString(UTDescription, s.Event.Description)
	}
	if s.Space.Hostname != "" {
		dst.AddCString(UTHostname, s.Space.Hostname)
	}
	if s.Space.IP != "" {
		dst.AddCString(UTIP, s.Space.IP)
	}
	if len(s.Space.Fields) > 0 {
		f := s.Space.Fields
		if _, ok := f["hostname"]; ok {
			f = withoutReserved(f)
		} else if _, ok := f["ip"]; ok {
			f = withoutReserved(f)
		}
		b, err := json.Marshal(f)
		if err != nil {
			return fmt.Errorf("encode STEP space fields: %w", err)
		}
		dst.Add(UTFields, b)
	}
	dst.AddUint64(UTValence, math.Float64bits(s.Psychology.Valence))
	dst.AddUint64(UTIntensity, math.Float64bits(s.Psychology.Intensity))
	return nil
}

func withoutReserved(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != "hostname" && k != "ip" {
			out[k] = v
		}
	}
	return out
}

// Decode reads a STEP from q and validates it. The result shares nothing
// with q. Unknown element types are ignored; a repeated one is an error.
func Decode(q *seq.Sequence) (*Step, error) {
	if q.ID != IDStep {
		return nil, fmt.Errorf("sequence id %#x is not a STEP (%#x)", q.ID, IDStep)
	}
	var s Step
	var seen uint16
	for _, e := range q.Elements {
		if e.UserType < UTID || e.UserType > UTIntensity {
			continue
		}
		bit := uint16(1) << (e.UserType - UTID)
		if seen&bit != 0 {
			return nil, fmt.Errorf("STEP element %#x appears twice", e.UserType)
		}
		seen |= bit
		switch e.UserType {
		case UTID:
			s.ID = e.CString()
		case UTType:
			s.Event.Type = e.CString()
		case UTDescription:
			s.Event.Description = e.CString()
		case UTHostname:
			s.Space.Hostname = e.CString()
		case UTIP:
			s.Space.IP = e.CString()
		case UTFields:
			if len(e.Data) > MaxJSONSize {
				return nil, fmt.Errorf("STEP space fields are %d bytes, more than %d", len(e.Data), MaxJSONSize)
			}
			var m map[string]any
			if err := json.Unmarshal(e.Data, &m); err != nil {
				return nil, fmt.Errorf("STEP space fields: %w", err)
			}
			delete(m, "hostname")
			delete(m, "ip")
			if len(m) > 0 {
				s.Space.Fields = m
			}
		default: // the 8-byte numbers
			if len(e.Data) != 8 {
				return nil, fmt.Errorf("STEP element %#x is %d bytes, want 8", e.UserType, len(e.Data))
			}
			v := binary.LittleEndian.Uint64(e.Data)
			switch e.UserType {
			case UTStart:
				s.Time.Start = int64(v)
			case UTEnd:
				s.Time.End = int64(v)
			case UTDuration:
				s.Time.Duration = int64(v)
			case UTValence:
				s.Psychology.Valence = math.Float64frombits(v)
			case UTIntensity:
				s.Psychology.Intensity = math.Float64frombits(v)
			}
		}
	}
	if seen&1 == 0 || seen&(1<<(UTStart-UTID)) == 0 || seen&(1<<(UTType-UTID)) == 0 {
		return nil, errors.New("STEP sequence lacks its id, time.start or event.type")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}
