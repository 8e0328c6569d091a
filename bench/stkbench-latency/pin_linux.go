package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinProcess runs every thread of this process on cpu from now on, with
// GOMAXPROCS 1, as taskset -c cpu would have from the start. A thread
// created later inherits the affinity of the thread that creates it, so
// pinning the threads there are now pins the process.
func pinProcess(cpu int) error {
	// Not runtime.NumCPU: a child started by a pinned parent counts only
	// the parent's CPU.
	if cpu < 0 {
		return fmt.Errorf("no CPU %d", cpu)
	}
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("pinning to CPU %d: %w", cpu, err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("pinning thread %d to CPU %d (--pin needs CPUs 0 and 1): %w", tid, cpu, err)
		}
	}
	runtime.GOMAXPROCS(1)
	return nil
}
