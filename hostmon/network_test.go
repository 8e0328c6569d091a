package hostmon

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/net"
	"github.com/stk-go/stk/internal/leakcheck"
)

func TestNetworkGolden(t *testing.T) {
	leakcheck.Check(t)
	root := fxRoot(t)
	c := fxCollector(t, "network", fxEnv(root))
	if steps := fxCollect(t, c, fxT0); len(steps) != 0 {
		t.Fatalf("first call: %d STEPs; rates need two samples", len(steps))
	}

	fxCopy(t, filepath.Join("testdata", "linux-t2"), root)
	steps := fxCollect(t, c, fxT2)
	fxGolden(t, "network_t2", steps)
	// lo is kept; ifb0 never carried a packet.
	if got, want := devices(steps, "interface"), []string{"eth0", "lo", "wlan0"}; !slices.Equal(got, want) {
		t.Fatalf("interfaces %v, want %v", got, want)
	}
	fxRates(t, steps, "interface", "eth0", map[string]float64{
		"rx_bytes_per_sec": 15e6, "tx_bytes_per_sec": 1e6, "bytes_per_sec": 16e6,
		"rx_packets_per_sec": 10000, "tx_packets_per_sec": 5000})
	fxRates(t, steps, "interface", "lo", map[string]float64{
		"rx_bytes_per_sec": 100000, "tx_bytes_per_sec": 100000, "rx_packets_per_sec": 500})

	// One second later eth0 was reset (left out until it has two samples
	// again) and wlan0's receive bytes wrapped at 32 bits.
	fxCopy(t, filepath.Join("testdata", "linux-t3"), root)
	steps = fxCollect(t, c, fxT3)
	fxGolden(t, "network_t3", steps)
	if got, want := devices(steps, "interface"), []string{"lo", "wlan0"}; !slices.Equal(got, want) {
		t.Fatalf("interfaces after a reset %v, want %v", got, want)
	}
	fxRates(t, steps, "interface", "wlan0", map[string]float64{
		"rx_bytes_per_sec": 100000, "tx_bytes_per_sec": 50000, "rx_packets_per_sec": 100})

	steps = fxCollect(t, c, fxT3.Add(500*time.Millisecond))
	fxRates(t, steps, "interface", "eth0", map[string]float64{"bytes_per_sec": 0})
}

func TestNetworkSteps(t *testing.T) {
	env := Env{Hostname: "h"}
	prev := map[string]net.IOCountersStat{
		"a": {Name: "a", BytesRecv: 1000, PacketsRecv: 10},
		"b": {Name: "b", BytesRecv: 1000, PacketsRecv: 10},
	}
	cur := []net.IOCountersStat{
		{Name: "b", BytesRecv: 4000, PacketsRecv: 13},
		{Name: "c", BytesRecv: 9000, PacketsRecv: 90}, // new: no previous sample
		{Name: "a", BytesRecv: 1500, PacketsRecv: 11},
	}
	steps := networkSteps(env, fxT0, prev, cur, 500*time.Millisecond)
	fxCheck(t, steps)
	if got := devices(steps, "interface"); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("interfaces %v, want [a b] sorted", got)
	}
	fxRates(t, steps, "interface", "b", map[string]float64{"rx_bytes_per_sec": 6000, "rx_packets_per_sec": 6})
	if steps := networkSteps(env, fxT0, prev, cur, 0); steps != nil {
		t.Errorf("%d STEPs with no time elapsed", len(steps))
	}
	if steps := networkSteps(env, fxT0, prev, cur, -time.Second); steps != nil {
		t.Errorf("%d STEPs with the clock gone back", len(steps))
	}
}

func TestNetworkUnreadable(t *testing.T) {
	c := fxCollector(t, "network", fxEnv(t.TempDir()))
	if _, err := c.Collect(t.Context(), fxT0); err == nil {
		t.Fatal("no error without net/dev")
	}
}

func TestNetworkRealHost(t *testing.T) {
	c := fxCollector(t, "network", Env{Hostname: "real"})
	fxCollect(t, c, time.Now())
	time.Sleep(50 * time.Millisecond)
	steps := fxCollect(t, c, time.Now())
	if !slices.Contains(devices(steps, "interface"), "lo") {
		t.Errorf("no lo among %v", devices(steps, "interface"))
	}
	for _, s := range steps {
		t.Log(s.Event.Description)
		rx, tx, all := fxFloat(t, s, "rx_bytes_per_sec"), fxFloat(t, s, "tx_bytes_per_sec"), fxFloat(t, s, "bytes_per_sec")
		if rx < 0 || tx < 0 || all != roundHundredths(rx+tx) || all > 1e12 {
			t.Errorf("%s: rx %v tx %v total %v", s.Event.Description, rx, tx, all)
		}
	}
}
