//go:build !linux

package main

import "errors"

func pinProcess(int) error { return errors.New("--pin works on Linux only") }
