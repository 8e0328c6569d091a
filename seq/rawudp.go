package seq

// RawUDPConfig says how a raw UDP receiver labels the sequences it makes:
// raw datagrams carry no header, so id, type, name and user type come from
// the receiver's configuration (the C options sequence_id, sequence_type,
// sequence_name, sequence_user_type).
type RawUDPConfig struct {
	ID       uint64
	Type     Type   // TypeData when zero
	Name     string // C default "UDP"
	UserType uint64
}

// DefaultRawUDPConfig matches the C listener's defaults.
var DefaultRawUDPConfig = RawUDPConfig{Type: TypeData, Name: "UDP"}

// RawUDPPayload returns the datagram payload of s on a raw UDP flow: its
// single element. A sequence without elements sends nothing (ok is false);
// one with several cannot be sent raw and gives ErrRawUDPElements.
func RawUDPPayload(s *Sequence) (payload []byte, ok bool, err error) {
	switch len(s.Elements) {
	case 0:
		return nil, false, nil
	case 1:
		return s.Elements[0].Data, true, nil
	}
	return nil, false, ErrRawUDPElements
}

// DecodeRawUDP makes dst the sequence a raw UDP receiver delivers for
// datagram d: one element aliasing d, labelled by cfg.
func DecodeRawUDP(dst *Sequence, d []byte, cfg RawUDPConfig) {
	dst.resetForDecode()
	dst.ID = cfg.ID
	dst.Type = cfg.Type
	if dst.Type == TypeInvalid {
		dst.Type = TypeData
	}
	if dst.Name != cfg.Name {
		dst.Name = cfg.Name
	}
	dst.Elements = append(dst.Elements, Element{UserType: cfg.UserType, Data: d[:len(d):len(d)]})
}
