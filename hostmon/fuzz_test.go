package hostmon

import (
	"net/netip"
	"testing"
)

// The parsers of kernel files are decoders too: a kernel of another
// version, a fixture tree or a container's /proc may hand them anything.
// None may panic; what they return must be within the input's bounds.

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 12 34 0 0 20 0 9 0 123456 1000000 250 18446744073709551615\n"))
	f.Add([]byte("1 () R"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, comm, err := parseProcStat(b)
		if err != nil {
			return
		}
		if len(comm) > len(b) || st.state == 0 {
			t.Fatalf("comm %q, state %q from %d bytes", comm, st.state, len(b))
		}
	})
}

func FuzzParseSysStat(f *testing.F) {
	f.Add([]byte("cpu  1 2 3 4\nbtime 1763776800\nprocesses 1234\nprocs_running 2\nprocs_blocked 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseSysStat(b)
		parseLoadavgThreads(b)
		procCmdline(b)
		procText(b)
		parseOSRelease(b)
		parseLogindSession(b)
	})
}

func FuzzParseNetTable(f *testing.F) {
	f.Add([]byte("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0100007F:4E22 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n" +
		"   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 777\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseNetTable(b, func(local netip.AddrPort, state byte, inode uint64) {
			if !local.IsValid() {
				t.Fatalf("invalid address passed on from %q", b)
			}
		})
	})
}
