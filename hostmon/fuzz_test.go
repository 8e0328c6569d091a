package hostmon

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
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

// sysStatModel is what parseSysStat must return for b, written the plain
// way: the last of each wanted line wins, a wanted line whose value is not
// a decimal uint64 (at most 20 digits, spaces around allowed) is an error,
// and so is input without any wanted line.
func sysStatModel(b []byte) (st sysStat, ok bool) {
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		key, val, cut := strings.Cut(line, " ")
		if !cut {
			continue
		}
		dst := map[string]*uint64{"btime": &st.btime, "processes": &st.forks,
			"procs_running": &st.running, "procs_blocked": &st.blocked}[key]
		if dst == nil {
			continue
		}
		val = strings.TrimSpace(val)
		v, err := strconv.ParseUint(val, 10, 64)
		if err != nil || len(val) > 20 {
			return st, false
		}
		*dst, found = v, true
	}
	return st, found
}

func FuzzParseSysStat(f *testing.F) {
	f.Add([]byte("cpu  1 2 3 4\nbtime 1763776800\nprocesses 1234\nprocs_running 2\nprocs_blocked 0\n"))
	f.Add([]byte("btime 1\nbtime 2\nprocesses  007 \nprocs_running 18446744073709551615"))
	f.Add([]byte("procs_blocked 18446744073709551616\n"))
	f.Add([]byte("procs_running 00000000000000000000001\n"))
	f.Add([]byte("intr 1 2 3\nctxt 99\n"))
	f.Add([]byte("btime -1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseSysStat(b)
		want, ok := sysStatModel(b)
		if ok != (err == nil) || ok && st != want {
			t.Fatalf("parseSysStat(%q) = %+v, %v; want %+v, ok %v", b, st, err, want, ok)
		}
		// Lines the parser does not want change nothing, before or after.
		if ok {
			st2, err := parseSysStat(append([]byte("cpu  1 2 3 4\nintr 5 6\n"), append(b, "\nctxt 7\n"...)...))
			if err != nil || st2 != st {
				t.Fatalf("parseSysStat(%q) with other lines around = %+v, %v; alone %+v", b, st2, err, st)
			}
		}

		// The thread count is the number after the slash of the fourth
		// field, or -1. (A count above MaxInt64 comes back negative: not
		// checked, no kernel reports one.)
		n, wantN := parseLoadavgThreads(b), int64(-1)
		if f := bytes.Fields(b); len(f) >= 4 {
			if _, total, cut := bytes.Cut(f[3], []byte("/")); cut && len(total) <= 20 {
				if v, err := strconv.ParseUint(string(total), 10, 64); err == nil {
					wantN = int64(v)
				}
			}
		}
		if n != wantN && wantN >= -1 {
			t.Fatalf("parseLoadavgThreads(%q) = %d, want %d", b, n, wantN)
		}

		// A command line is valid UTF-8 without NULs, and longer than the
		// input only by replacement characters.
		cmd, truncated := procCmdline(b)
		if !utf8.ValidString(cmd) || strings.ContainsRune(cmd, 0) || truncated != (len(b) > ProcessCmdlineMax) ||
			len(strings.ReplaceAll(cmd, "\uFFFD", "")) > min(len(b), ProcessCmdlineMax) {
			t.Fatalf("procCmdline(%q) = %q, %v", b, cmd, truncated)
		}
		if txt := procText(b); !utf8.ValidString(txt) || utf8.Valid(b) && txt != string(b) {
			t.Fatalf("procText(%q) = %q", b, txt)
		}
		// Values come from the input.
		id, version := parseOSRelease(b)
		if !bytes.Contains(b, []byte(id)) || !bytes.Contains(b, []byte(version)) {
			t.Fatalf("parseOSRelease(%q) = %q, %q", b, id, version)
		}
		if u, ok := parseLogindSession(b); ok && (!bytes.Contains(b, []byte(u.User)) || !bytes.Contains(b, []byte(u.Terminal)) || !bytes.Contains(b, []byte(u.Host))) {
			t.Fatalf("parseLogindSession(%q) = %+v", b, u)
		}
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
