package ctest

import "testing"

// TestOnlyGoSyscallParams: the Go runtime's system-call parameters are
// forgiven; an error in C code, a leak or a Param error of a C function is
// not.
func TestOnlyGoSyscallParams(t *testing.T) {
	goParams := `--10781-- WARNING: Serious error when reading debug info
ok online
==10781== Thread 10:
==10781== Syscall param getrandom(cpu) points to unaddressable byte(s)
==10781==    at 0x49133AE: internal/runtime/syscall/linux.Syscall6 (asm_linux_amd64.s:36)
==10781==  Address 0x344c500da860 is in a rw- anonymous segment
==10781== 
==10781== Thread 4:
==10781== Syscall param socketcall.connect(serv_addr.sin_port) points to unaddressable byte(s)
==10781==    at 0x49133AE: internal/runtime/syscall/linux.Syscall6 (asm_linux_amd64.s:36)
==10781==  Address 0x344c500daace is in a rw- anonymous segment
==10781== 
ok tls online
PASS
`
	cases := []struct {
		name, out string
		want      bool
	}{
		{"Go runtime syscalls", goParams, true},
		{"no error", "ok online\nPASS\n", false},
		{"C syscall param", `==1== Syscall param write(buf) points to uninitialised byte(s)
==1==    at 0x4954350: write (write.c:26)
==1==    by 0x109184: main (vgp.c:3)
`, false},
		{"Go param plus a C invalid read", goParams + `==10781== Invalid read of size 1
==10781==    at 0x1091A0: main (bad_memory.c:20)
`, false},
		{"Go param plus a leak", goParams + `==10781== 16 bytes in 1 blocks are definitely lost in loss record 1 of 1
==10781==    at 0x48407B4: malloc (vg_replace_malloc.c:381)
`, false},
		{"uninitialised, from Go", `==1== Syscall param write(buf) points to uninitialised byte(s)
==1==    at 0x49133AE: internal/runtime/syscall/linux.Syscall6 (asm_linux_amd64.s:36)
`, true},
	}
	for _, c := range cases {
		if got := onlyGoSyscallParams(c.out); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
