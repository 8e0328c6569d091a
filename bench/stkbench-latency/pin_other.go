//go:build !linux

package main

import (
	"errors"
	"os/exec"
)

func pinProcess(int) error { return errors.New("--pin works on Linux only") }

// startOnCPU starts cmd; pinning it works on Linux only.
func startOnCPU(cmd *exec.Cmd, cpu int) error {
	if cpu >= 0 {
		return errors.New("--pin works on Linux only")
	}
	return cmd.Start()
}
