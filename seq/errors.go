package seq

import (
	"errors"
	"strings"
)

// Limits shared by the codecs.
const (
	// MaxElements is the most elements a TCP frame may carry toward a C
	// receiver: its element counter is one byte and 256 or more crash it.
	MaxElements = 255
	// DefaultMaxSize bounds a decoded sequence (frame or reassembled bytes)
	// when a decoder is given no maximum.
	DefaultMaxSize = 64 << 20
	// MaxNameLen is the longest sequence name the u16 length field can hold
	// (the length counts the NUL).
	MaxNameLen = 0xfffe
)

// Errors returned by the codecs. Decoding errors wrap ErrMalformed or
// ErrTooLarge so that callers can tell bad peers from big ones.
var (
	ErrInvalidType     = errors.New("seq: sequence type 0 (invalid) cannot be sent; set Sequence.Type")
	ErrTooManyElements = errors.New("seq: more than 255 elements in one sequence; C receivers crash on it, split the data")
	ErrNameTooLong     = errors.New("seq: sequence name longer than 65534 bytes")
	ErrNameHasNUL      = errors.New("seq: sequence name contains a NUL byte")
	ErrTooLarge        = errors.New("seq: sequence larger than the maximum size")
	ErrMalformed       = errors.New("seq: malformed data")
	ErrRawUDPElements  = errors.New("seq: a raw UDP sequence carries exactly one element")
	ErrElementTooLarge = errors.New("seq: element larger than 4 GiB")
)

func checkName(name string) error {
	if len(name) > MaxNameLen {
		return ErrNameTooLong
	}
	if strings.IndexByte(name, 0) >= 0 {
		return ErrNameHasNUL
	}
	return nil
}
