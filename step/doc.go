// Package step defines the STEP event (Space, Time, Event, Psychology), the
// unit host monitors publish and the STEP bus in stkd stores, queries and
// streams.
//
// A Step has a fixed JSON shape, the public contract of the HTTP API and
// the archive:
//
//	{"id": "0f8e2c1a-5b7d-4e39-9c61-2d4a8b3f7e10",
//	 "time": {"start": 1763776800000},
//	 "event": {"type": "system.memory.high", "description": "memory use at 91%"},
//	 "space": {"hostname": "db-2", "ip": "10.1.4.22", "memory_percent": 91},
//	 "psychology": {"valence": -0.6, "intensity": 0.8}}
//
// Times are Unix milliseconds; time may also carry "end" and "duration"
// (milliseconds). Space holds where the event happened (hostname, ip) and
// the event's own fields. Psychology scores the event's mood: valence from
// -1 (bad) to +1 (good), intensity from 0 to 1. Alerts put their level in
// space as "level": "warning", "critical" or "recovered" (see Level).
//
// # On the wire
//
// One STEP travels as one sequence of type seq.TypeData with id IDStep and
// name "step". Its elements (strings are NUL-terminated, numbers 8 bytes
// little-endian as everywhere in STK):
//
//	user type    field                 encoding
//	0x53540001   id                    C string (required)
//	0x53540002   time.start            u64 Unix ms (required)
//	0x53540003   time.end              u64 Unix ms (absent when 0)
//	0x53540004   time.duration         u64 ms (absent when 0)
//	0x53540005   event.type            C string (required)
//	0x53540006   event.description     C string
//	0x53540007   space.hostname        C string
//	0x53540008   space.ip              C string
//	0x53540009   space's other fields  JSON object text (absent when none)
//	0x5354000a   psychology.valence    IEEE 754 float64 bits, u64
//	0x5354000b   psychology.intensity  IEEE 754 float64 bits, u64
//
// Decoders ignore element types they do not know, so later versions can add
// fields. One STEP per sequence keeps every sequence self-contained: a
// subscriber that joins late or loses a UDP datagram loses whole events only.
//
// Patterns (ParsePattern) select events by type with '*' wildcards, as the
// HTTP query and stream filters do.
package step
