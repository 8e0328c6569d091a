//go:build !linux

package flow

import (
	"net"
	"time"
)

// kernelTimestamps: receive timestamps are read on Linux only; elsewhere
// the receiver stamps datagrams when it reads them.
func kernelTimestamps(*net.UDPConn) bool { return false }

func kernelTimestamp([]byte) (time.Time, bool) { return time.Time{}, false }
