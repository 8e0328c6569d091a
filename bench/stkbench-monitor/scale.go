package main

import (
	"fmt"
	"time"
)

func runScale(args []string) error {
	fs := newFlags("scale", "Runs --services services at the default smartbeat period (2 Hz) over --procs processes, waits\n"+
		"until stkd holds them all and --settle more, then reports stkd's CPU use (utime+stime from\n"+
		"/proc/PID/stat) and RSS (VmRSS each second) over --window, and the services timed out.")
	sf := addServiceFlags(fs, 10000, 4, 0)
	window := fs.Duration("window", time.Minute, "measurement window")
	settle := fs.Duration("settle", 10*time.Second, "wait this long after the monitor holds every service")
	noHTTP := fs.Bool("no-http", false, "run stkd without its HTTP UI (timeouts are then counted from its log, and nothing else from stkd)")
	if err := parse(fs, args); err != nil {
		return err
	}
	spec, err := sf.spec("scale")
	if err != nil {
		return err
	}
	fmt.Printf("scale: %s\n", conditions())
	b, err := startBench(*sf.bin, spec, *noHTTP, false, false)
	if err != nil {
		return err
	}
	defer b.close()
	if p, err := readProc(b.d.pid()); err == nil {
		fmt.Printf("stkd until then: %.1f s of CPU, %.1f MB RSS\n", p.cpu.Seconds(), float64(p.rssKB)/1024)
	}
	time.Sleep(*settle)

	var st0, st1 statsJSON
	if !*noHTTP {
		if st0, err = b.d.stats(); err != nil {
			return err
		}
	}
	logTimeouts0, _ := b.d.logCounts()
	pids := []int{b.d.pid()}
	for _, c := range b.beaters {
		pids = append(pids, c.pid())
	}
	ps := sampleProcs(pids...)
	start := time.Now()
	time.Sleep(*window)
	us := ps.finish()
	elapsed := time.Since(start)
	if !*noHTTP {
		if st1, err = b.d.stats(); err != nil {
			return err
		}
	}
	logTimeouts, stalls := b.d.logCounts()

	s, svc := us[0], sumUsage(us[1:])
	ui := "on"
	if *noHTTP {
		ui = "off"
	}
	fmt.Printf("result over %.0f s (%d services, %v beat, %v activity timeout, HTTP UI %s):\n",
		elapsed.Seconds(), spec.services, spec.beat, spec.activity, ui)
	fmt.Printf("  stkd CPU                  %.1f%% of one core (%.2f s of CPU)\n", s.cpuPct, s.cpu.Seconds())
	fmt.Printf("  stkd RSS                  mean %.1f MB, max %.1f MB (peak since start %.1f MB)\n", s.rssMeanMB, s.rssMaxMB, s.hwmMB)
	fmt.Printf("  services' processes       %.1f%% of one core, RSS %.1f MB in all\n", svc.cpuPct, svc.rssMaxMB)
	fmt.Printf("  false timeouts            %d in the window (stkd's log), %d since start\n", logTimeouts-logTimeouts0, logTimeouts)
	fmt.Printf("  monitor stalls            %d since start %v\n", len(stalls), stalls)
	if !*noHTTP {
		m0, m1 := st0.Monitor, st1.Monitor
		want := float64(spec.services) * elapsed.Seconds() / spec.beat.Seconds()
		fmt.Printf("  false timeouts (counter)  %d in the window, %d since start; %d current\n", m1.TimedOut-m0.TimedOut, m1.TimedOut, m1.Current)
		fmt.Printf("  smartbeats received       %d of about %.0f (%.2f%%), in %d sequences; %d unknown, %d malformed\n",
			m1.Beats-m0.Beats, want, 100*float64(m1.Beats-m0.Beats)/want, m1.Smartbeats-m0.Smartbeats, m1.UnknownBeats-m0.UnknownBeats, m1.Malformed)
		fmt.Printf("  stkd Go heap              %.1f MB live objects, %.1f MB mapped by the runtime, %d goroutines\n",
			float64(st1.Daemon.HeapBytes)/(1<<20), float64(st1.Daemon.TotalBytes)/(1<<20), st1.Daemon.Goroutines)
		fmt.Printf("  monitor events dropped    %d (a subscriber's queue was full), %d event-stream resets (the ring had lost them too)\n",
			m1.EventsDropped-m0.EventsDropped, st1.HTTP.StreamResets-st0.HTTP.StreamResets)
	}
	if logTimeouts > 0 {
		return fmt.Errorf("%d false timeouts", logTimeouts)
	}
	return nil
}
