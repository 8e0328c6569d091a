package smartbeat

import "strconv"

// State is a service's state, a u8 on the wire (docs/protocol.md §8.2). Values 1
// to 5 have default names; 6 to 255 belong to the application, which may
// name them (Service.SetStateName).
type State uint8

// The states STK defines. Transitions are not checked: any state may follow
// any other.
const (
	Invalid  State = 0 // never a real state
	Starting State = 1 // the state of a new service
	Running  State = 2
	Stopping State = 3
	Stopped  State = 4 // sent in DESTROY when no other last state is given
	TimedOut State = 5 // given by a service group to a member it timed out
)

var defaultStateNames = [...]string{"", "starting", "running", "stopping", "stopped", "timed out"}

// DefaultName returns the STK name of a default state ("starting" ...
// "timed out") and false for any other state.
func (s State) DefaultName() (string, bool) {
	if s > Invalid && int(s) < len(defaultStateNames) {
		return defaultStateNames[s], true
	}
	return "", false
}

// String returns the default name of s, or its number as C prints a state
// without a name ("129").
func (s State) String() string {
	if n, ok := s.DefaultName(); ok {
		return n
	}
	return strconv.Itoa(int(s))
}

// ServiceType is a service's type, a u16 on the wire. Values other than the
// four below are the application's.
type ServiceType uint16

// Service types STK names.
const (
	TypeIO   ServiceType = 1
	TypeData ServiceType = 2 // the default of Options.Type, as in the C examples
	TypeMgmt ServiceType = 3
	TypeNet  ServiceType = 4
)

// String returns the name the C web monitor shows ("I/O", "Data",
// "Management", "Network"), or the number.
func (t ServiceType) String() string {
	switch t {
	case TypeIO:
		return "I/O"
	case TypeData:
		return "Data"
	case TypeMgmt:
		return "Management"
	case TypeNet:
		return "Network"
	}
	return strconv.Itoa(int(t))
}
