//go:build !unix

package flow

// Elsewhere a connection's frames always go through its writer goroutine.
const rawWriteSupported = false

func rawWrite(uintptr, []byte) int { return 0 }
