package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stk-go/stk/smartbeat"
)

// beatConfig is a smartbeat period and the activity timeout that goes
// with it.
type beatConfig struct{ beat, activity time.Duration }

func (c beatConfig) String() string {
	return fmt.Sprintf("beat %v, activity timeout %v", c.beat, c.activity)
}

func parseConfigs(s string) ([]beatConfig, error) {
	var out []beatConfig
	for _, p := range strings.Split(s, ",") {
		b, a, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok {
			return nil, fmt.Errorf("--configs: %q is not BEAT/ACTIVITY-TIMEOUT", p)
		}
		beat, err1 := time.ParseDuration(b)
		act, err2 := time.ParseDuration(a)
		if err1 != nil || err2 != nil || beat <= 0 || act < beat {
			return nil, fmt.Errorf("--configs: %q: want two durations, the second at least the first", p)
		}
		out = append(out, beatConfig{beat, act})
	}
	return out, nil
}

// detection is one kill.
type detection struct {
	detect   time.Duration // kill -> timed out, on the monitor's clock
	phase    time.Duration // last smartbeat received -> kill
	silence  time.Duration // the verdict's silence
	notify   time.Duration // timed out -> the event read here
	detector string
}

func runDetect(args []string) error {
	fs := newFlags("detect", "Starts stkd, then for each beat period runs examples/monitored_service, waits until the monitor\n"+
		"shows it running with a few smartbeats, kills it with SIGKILL at a random phase of its beat, and\n"+
		"measures the time until the monitor's timed_out event (its own clock, from /api/v1/events).")
	bin := binFlag(fs)
	configs := fs.String("configs", "100ms/240ms,500ms/1.2s,1s/2.4s", "BEAT/ACTIVITY-TIMEOUT pairs to measure, comma-separated (500ms/1.2s are the defaults)")
	runs := fs.Int("runs", 20, "kills per pair")
	verbose := fs.BoolP("verbose", "v", false, "print every kill")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfgs, err := parseConfigs(*configs)
	if err != nil {
		return err
	}
	dir, cleanup, err := programs(*bin)
	if err != nil {
		return err
	}
	defer cleanup()
	logDir, err := os.MkdirTemp("", "stk-bench-detect-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(logDir)

	fmt.Printf("detect: %s; %d kills per configuration\n", conditions(), *runs)
	d, err := startDaemon(dir, logDir, false)
	if err != nil {
		return err
	}
	defer d.stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs, err := d.events(ctx)
	if err != nil {
		return err
	}
	failed := 0
	for _, cfg := range cfgs {
		var res []detection
		for i := range *runs {
			r, err := detectOnce(dir, d, evs, cfg, fmt.Sprintf("detect-%v-%d", cfg.beat, i))
			if err != nil {
				fmt.Printf("  run %d: %v\n", i, err)
				failed++
				continue
			}
			if *verbose {
				fmt.Printf("  run %2d: kill->timed out %4.0f ms, last beat->kill %4.0f ms, silence %4.0f ms, event read +%.1f ms, %s\n",
					i, msOf(r.detect), msOf(r.phase), msOf(r.silence), msOf(r.notify), r.detector)
			}
			res = append(res, r)
		}
		printDetections(cfg, res)
	}
	if failed > 0 {
		return fmt.Errorf("%d kills not measured", failed)
	}
	return nil
}

// detectOnce runs one service, kills it and waits for its timeout.
func detectOnce(dir string, d *daemon, evs <-chan event, cfg beatConfig, name string) (detection, error) {
	// The previous run ended at a check of the monitor, which checks every
	// 100 ms: starting at once would put the new service's smartbeats (a
	// multiple of 100 ms apart) at the same phase of the checks every run.
	time.Sleep(rand.N(smartbeat.DefaultCheckInterval))
	c, err := startChild(filepath.Join(dir, "monitored_service"), "-m", d.Monitor, "-S", name,
		"--beat", cfg.beat.String(), "--activity-timeout", cfg.activity.String(), "-i", "1s")
	if err != nil {
		return detection{}, err
	}
	defer c.kill()

	// Wait until it runs and has beaten three times since.
	var uid uint64
	beats := 0
	deadline := time.After(10*time.Second + 5*cfg.beat)
	for beats < 3 {
		select {
		case ev, ok := <-evs:
			if !ok {
				return detection{}, fmt.Errorf("the event stream ended")
			}
			if ev.Service.Name != name {
				continue
			}
			switch {
			case uid == 0 && ev.Service.State == 2 && ev.Service.Current:
				uid = ev.Service.UID
			case uid != 0 && ev.Service.UID == uid && ev.Kind == "beat":
				beats++
			case ev.Kind == "timed_out":
				return detection{}, fmt.Errorf("%s timed out before the kill: %s", name, ev.reason())
			}
		case <-deadline:
			return detection{}, fmt.Errorf("%s not running with 3 smartbeats in time (uid %d, %d beats): %s", name, uid, beats, c.output())
		}
	}
	time.Sleep(rand.N(cfg.beat)) // a random phase of the beat

	t0 := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return detection{}, err
	}
	deadline = time.After(cfg.activity + 10*time.Second)
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return detection{}, fmt.Errorf("the event stream ended")
			}
			if ev.Service.UID != uid || ev.Kind != "timed_out" {
				continue
			}
			r := detection{detect: ev.At.Sub(t0), notify: ev.Recv.Sub(ev.At)}
			if ev.Service.LastReceived != nil {
				r.phase = t0.Sub(*ev.Service.LastReceived)
			}
			if v := ev.Service.Verdict; v != nil {
				r.silence = time.Duration(v.SilenceMS * float64(time.Millisecond))
				r.detector = v.Detector
			}
			return r, nil
		case <-deadline:
			return detection{}, fmt.Errorf("%s killed, not timed out after %v", name, cfg.activity+10*time.Second)
		}
	}
}

func printDetections(cfg beatConfig, res []detection) {
	var detect, phase, silence, notify []float64
	detectors := map[string]int{}
	for _, r := range res {
		detect = append(detect, msOf(r.detect))
		phase = append(phase, msOf(r.phase))
		silence = append(silence, msOf(r.silence))
		notify = append(notify, msOf(r.notify))
		detectors[r.detector]++
	}
	fmt.Printf("%s (%d kills):\n", cfg, len(res))
	fmt.Printf("  kill -9 -> timed out      %s\n", summary(detect))
	fmt.Printf("  last beat -> kill         %s\n", summary(phase))
	fmt.Printf("  silence at the verdict    %s\n", summary(silence))
	fmt.Printf("  timed out -> event here   %s\n", summary(notify))
	fmt.Printf("  detectors                 %v\n", detectors)
}
