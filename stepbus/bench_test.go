package stepbus

import (
	"fmt"
	"testing"
	"time"

	"github.com/stk-go/stk/internal/testutil"
	"github.com/stk-go/stk/step"
)

// benchSteps returns n metric STEPs of 10 hosts, like a host monitor's.
func benchSteps(n int) []*step.Step {
	types := []string{"system.cpu", "system.memory", "system.disk", "system.network", "system.cpu.high"}
	out := make([]*step.Step, n)
	for i := range out {
		s := metric(types[i%len(types)], fmt.Sprint("host-", i%10), int64(1_763_776_800_000+i),
			"cpu_percent", float64(i%100), "memory_percent", 42.5, "load1", 0.7)
		out[i] = s
	}
	return out
}

// Publish with two live subscribers (one draining, one filtered), without
// and with the archive: the cost Publish adds to its caller. The
// allocations are the archive writer's JSON encoding, on its goroutine;
// when it cannot keep up, STEPs are dropped from the archive (reported).
func BenchmarkPublish(b *testing.B) {
	b.Run("2subs", func(b *testing.B) { benchPublish(b, "") })
	b.Run("2subs+archive", func(b *testing.B) { benchPublish(b, b.TempDir()) })
}

func benchPublish(b *testing.B, archive string) {
	bus, err := New(Config{ArchiveDir: archive, Logger: testutil.Discard()})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	all := bus.Subscribe(step.Pattern{}, "", 4096)
	cpu := bus.Subscribe(step.MustPattern("system.cpu*"), "host-3", 4096)
	stop := make(chan struct{})
	defer close(stop)
	for _, s := range []*Subscription{all, cpu} {
		go func() {
			for {
				select {
				case <-s.C():
				case <-stop:
					return
				}
			}
		}()
	}
	steps := benchSteps(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := bus.Publish(steps[i%len(steps)], "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := bus.Stats()
	b.ReportMetric(float64(st.Archive.Dropped), "archive-dropped")
	b.ReportMetric(float64(st.Dropped), "sub-dropped")
}

// Query over a full history of DefaultHistory STEPs.
func BenchmarkQuery(b *testing.B) {
	bus, err := New(Config{Logger: testutil.Discard()})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	for _, s := range benchSteps(DefaultHistory) {
		bus.Publish(s, "bench")
	}
	from := time.UnixMilli(1_763_776_800_000 + DefaultHistory/2)
	for _, bc := range []struct {
		name string
		q    Query
	}{
		{"newest100", Query{Limit: 100}},
		{"pattern+host/limit100", Query{Pattern: step.MustPattern("system.cpu.*"), Host: "host-4", Limit: 100}},
		{"since-half/limit1000", Query{Since: from, Limit: 1000}},
		{"pattern/all", Query{Pattern: step.MustPattern("system.memory")}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n = len(bus.Query(bc.q))
			}
			b.ReportMetric(float64(n), "results")
		})
	}
}

// The archive writer's throughput: JSON encoding, zstd and the writes, per
// STEP (the queue holds them all, so none is dropped).
func BenchmarkArchive(b *testing.B) {
	steps := benchSteps(1024)
	dir := b.TempDir()
	bus, err := New(Config{ArchiveDir: dir, ArchiveQueue: b.N + 1, History: 1024, Logger: testutil.Discard()})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		bus.Publish(steps[i%len(steps)], "bench")
	}
	bus.Close() // waits for the writer
	b.StopTimer()
	st := bus.Stats().Archive
	if st.Dropped != 0 || st.Written != uint64(b.N) {
		b.Fatalf("archive wrote %d, dropped %d of %d", st.Written, st.Dropped, b.N)
	}
	b.ReportMetric(float64(st.Bytes)/float64(b.N), "disk-B/step")
}
