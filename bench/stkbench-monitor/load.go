package main

import (
	"fmt"
	"slices"
	"syscall"
	"time"
)

func runLoad(args []string) error {
	fs := newFlags("load", "Runs --services services (default period and activity timeout) and busy loops on every core\n"+
		"for --duration, and counts the services the monitor times out: every one is a false timeout.")
	sf := addServiceFlags(fs, 50, 1, 0)
	duration := fs.Duration("duration", 10*time.Minute, "how long to run under load")
	burners := fs.Int("burners", numCPU(), "busy-loop processes (one per core by default)")
	report := fs.Duration("report", time.Minute, "print progress this often")
	if err := parse(fs, args); err != nil {
		return err
	}
	spec, err := sf.spec("load")
	if err != nil {
		return err
	}
	fmt.Printf("load: %s\n", conditions())
	b, err := startBench(*sf.bin, spec, false, true, true)
	if err != nil {
		return err
	}
	defer b.close()
	burn, err := startBurners(*burners)
	if err != nil {
		return err
	}
	defer killAll(burn)
	fmt.Printf("%d busy loops started; running %v (%v beat, %v activity timeout)\n", *burners, *duration, spec.beat, spec.activity)

	st0, err := b.d.stats()
	if err != nil {
		return err
	}
	b.w.reset()
	pids := []int{b.d.pid()}
	for _, c := range append(slices.Clone(b.beaters), burn...) {
		pids = append(pids, c.pid())
	}
	ps := sampleProcs(pids...)
	start := time.Now()
	tick := time.NewTicker(*report)
	defer tick.Stop()
	end := time.After(*duration)
	var st statsJSON
loop:
	for {
		select {
		case <-tick.C:
		case <-end:
			break loop
		}
		if st, err = b.d.stats(); err == nil {
			fmt.Printf("  %6.0f s: %d current, %d timed out, %d stalls; intervals between smartbeats: %s\n",
				time.Since(start).Seconds(), st.Monitor.Current, st.Monitor.TimedOut-st0.Monitor.TimedOut,
				st.Monitor.Stalls-st0.Monitor.Stalls, b.w.gapSummary())
		}
	}
	elapsed := time.Since(start)
	us := ps.finish()
	if st, err = b.d.stats(); err != nil {
		return err
	}
	logTimeouts, stalls := b.d.logCounts()
	m0, m1 := st0.Monitor, st.Monitor
	want := float64(spec.services) * elapsed.Seconds() / spec.beat.Seconds()
	fmt.Printf("result after %.0f s:\n", elapsed.Seconds())
	fmt.Printf("  false timeouts            %d (stkd's counter), %d (its log), %d (event stream)\n", m1.TimedOut-m0.TimedOut, logTimeouts, len(b.w.timeouts()))
	fmt.Printf("  current services          %d of %d\n", m1.Current, spec.services)
	fmt.Printf("  smartbeats received       %d of about %.0f (%.2f%%)\n", m1.Beats-m0.Beats, want, 100*float64(m1.Beats-m0.Beats)/want)
	fmt.Printf("  beat intervals (monitor)  %s\n", b.w.gapSummary())
	fmt.Printf("  monitor stalls            %d (%.0f ms credited) %v\n", m1.Stalls-m0.Stalls, m1.StallTimeMS-m0.StallTimeMS, stalls)
	fmt.Printf("  CPU, %% of one core        stkd %.1f, services %.1f, busy loops %.1f (of %d00 available)\n",
		us[0].cpuPct, sumUsage(us[1:1+len(b.beaters)]).cpuPct, sumUsage(us[1+len(b.beaters):]).cpuPct, numCPU())
	printTimeouts(b.w.timeouts())
	if n := m1.TimedOut - m0.TimedOut; n > 0 {
		return fmt.Errorf("%d false timeouts", n)
	}
	return nil
}

func runSigstop(args []string) error {
	fs := newFlags("sigstop", "Runs --services services, then pauses stkd with SIGSTOP for --pause and resumes it with\n"+
		"SIGCONT, --pauses times, --between apart, and counts the services the monitor times out: every\n"+
		"one is a false timeout (the services beat throughout).")
	sf := addServiceFlags(fs, 50, 1, 0)
	pauses := fs.Int("pauses", 5, "number of pauses")
	pause := fs.Duration("pause", 2*time.Second, "length of each pause")
	between := fs.Duration("between", 5*time.Second, "time from a resume to the next pause (at least a few activity timeouts)")
	burners := fs.Int("burners", 0, "busy-loop processes running meanwhile")
	if err := parse(fs, args); err != nil {
		return err
	}
	spec, err := sf.spec("sigstop")
	if err != nil {
		return err
	}
	fmt.Printf("sigstop: %s\n", conditions())
	b, err := startBench(*sf.bin, spec, false, true, true)
	if err != nil {
		return err
	}
	defer b.close()
	if *burners > 0 {
		burn, err := startBurners(*burners)
		if err != nil {
			return err
		}
		defer killAll(burn)
		fmt.Printf("%d busy loops started\n", *burners)
	}
	time.Sleep(*between)
	st0, err := b.d.stats()
	if err != nil {
		return err
	}
	prev := st0
	total := uint64(0)
	for i := range *pauses {
		_, stallsBefore := b.d.logCounts()
		if err := b.d.signal(syscall.SIGSTOP); err != nil {
			return err
		}
		t := time.Now()
		time.Sleep(*pause)
		if err := b.d.signal(syscall.SIGCONT); err != nil {
			return err
		}
		stopped := time.Since(t)
		time.Sleep(*between)
		st, err := b.d.stats()
		if err != nil {
			return err
		}
		_, stalls := b.d.logCounts()
		n := st.Monitor.TimedOut - prev.Monitor.TimedOut
		total += n
		fmt.Printf("  pause %d: stopped %.3f s; stall credited %v; %d timed out, %d resurrected, %d current\n",
			i+1, stopped.Seconds(), stalls[len(stallsBefore):], n, st.Monitor.Resurrected-prev.Monitor.Resurrected, st.Monitor.Current)
		prev = st
	}
	m0, m1 := st0.Monitor, prev.Monitor
	fmt.Printf("result: %d false timeouts over %d pauses of %v (%d stalls detected, %.0f ms credited); %d of %d services current\n",
		total, *pauses, *pause, m1.Stalls-m0.Stalls, m1.StallTimeMS-m0.StallTimeMS, m1.Current, spec.services)
	printTimeouts(b.w.timeouts())
	if total > 0 {
		return fmt.Errorf("%d false timeouts", total)
	}
	return nil
}
