// Command vgprobe is the smallest Go program that makes the runtime read
// the CPU's time stamp counter the way it does under load (runtime.cputicks,
// RDTSCP where CPUID offers it): TestValgrind runs it under valgrind first,
// to tell "valgrind cannot run Go code on this CPU" from "our program is
// wrong". valgrind 3.19 on some AMD CPUs advertises RDTSCP to the program
// but cannot execute it (SIGILL, "Illegal opcode").
package main

import (
	"fmt"
	"runtime"
	"sync"
)

func main() {
	// With block profiling on, every blocking channel operation and
	// contended mutex reads cputicks, so the probe hits it for sure, not
	// only when a runtime lock happens to be contended.
	runtime.SetBlockProfileRate(1)
	runtime.SetMutexProfileFraction(1)
	ch := make(chan int)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { ch <- i })
	}
	sum := 0
	for range 4 {
		sum += <-ch
	}
	wg.Wait()
	fmt.Println("ok", sum)
}
