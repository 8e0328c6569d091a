package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"

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

// startOnCPU starts cmd, another program than this one, with every thread
// on cpu (anywhere if cpu < 0), as taskset -c cpu would: the thread that
// forks it is pinned for the fork, and a process inherits the affinity of
// the thread that forked it, so its threads are pinned from the start
// (setting the affinity of its pid after the start would race with the
// threads it creates). The child is killed if the thread that started it
// dies, so that it cannot outlive this process; Go keeps its threads
// until the process exits, unless a goroutine exits locked to one, which
// this one does not.
func startOnCPU(cmd *exec.Cmd, cpu int) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if cpu < 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var was, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		return fmt.Errorf("reading this thread's CPUs: %w", err)
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pinning to CPU %d (--pin needs CPUs 0 and 1): %w", cpu, err)
	}
	startErr := cmd.Start()
	if err := unix.SchedSetaffinity(0, &was); err != nil {
		// Not expected (the set was just read); the thread would stay on
		// cpu, against --pin's placement: say so rather than measure.
		if startErr == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		return fmt.Errorf("restoring this thread's CPUs after starting %s: %w", cmd.Path, err)
	}
	return startErr
}
