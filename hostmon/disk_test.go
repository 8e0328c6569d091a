package hostmon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/disk"
	"github.com/stk-go/stk/internal/leakcheck"
	"github.com/stk-go/stk/step"
)

// fxStatfs stands in for statfs: usage as gopsutil derives it from a
// file system's blocks (4 KiB each), blocks free and blocks available to
// users.
type fxStatfs map[string][3]uint64

func (f fxStatfs) usage(_ context.Context, path string) (*disk.UsageStat, error) {
	b, ok := f[path]
	if !ok {
		return nil, errors.New("no such mount")
	}
	const bs = 4096
	u := &disk.UsageStat{Path: path, Total: b[0] * bs, Free: b[2] * bs, Used: (b[0] - b[1]) * bs}
	u.UsedPercent = float64(u.Used) / float64(u.Used+u.Free) * 100
	return u, nil
}

var fxMounts = fxStatfs{
	"/":           {13107200, 3276800, 2621440}, // 50 GiB, 2.5 GiB reserved
	"/home":       {52428800, 41943040, 41943040},
	"/data":       {262144000, 13107200, 13107200},
	"/mnt/backup": {26214400, 26000000, 26000000},
	"/mnt/home2":  {26214400, 26000000, 26000000},
}

func fxDiskCollector(t *testing.T, root string, fs fxStatfs) *diskCollector {
	t.Helper()
	c := fxCollector(t, "disk", fxEnv(root)).(*diskCollector)
	c.usage = fs.usage
	return c
}

func mountpoints(steps []*step.Step) []string {
	var out []string
	for _, s := range steps {
		m, _ := s.String("mountpoint")
		out = append(out, m)
	}
	return out
}

func TestDiskGolden(t *testing.T) {
	leakcheck.Check(t)
	c := fxDiskCollector(t, fxRoot(t), fxMounts)
	steps := fxCollect(t, c, fxT0)
	fxGolden(t, "disk", steps)
	// Left out: proc, sysfs, tmpfs, overlay and nfs (nodev in
	// /proc/filesystems), the bind mount on /etc/hosts, the squashfs snap,
	// the xfs /data hidden under a later mount, and /mnt/home2, a second
	// subvolume of /mnt/backup's device.
	if got, want := mountpoints(steps), []string{"/", "/home", "/mnt/backup", "/data"}; !slices.Equal(got, want) {
		t.Fatalf("mounts %v, want %v", got, want)
	}
	root := steps[0]
	// used = (13107200 - 3276800) blocks, free to users = 2621440 blocks:
	// 9830400 / 12451840 = 78.947... %, as df shows it.
	for key, want := range map[string]float64{
		"disk_percent": 78.95, "disk_total_bytes": 13107200 * 4096, "disk_used_bytes": 9830400 * 4096,
		"disk_free_bytes": 2621440 * 4096,
	} {
		if got := fxFloat(t, root, key); got != want {
			t.Errorf("/ %s = %v, want %v", key, got, want)
		}
	}
	if d, _ := root.String("device"); d != "/dev/sda1" {
		t.Errorf("/ device %q", d)
	}
	if d, _ := steps[3].String("device"); d != "/dev/sda3" {
		t.Errorf("/data device %q, want the top mount's /dev/sda3", d)
	}
}

func TestDiskMountTableRefresh(t *testing.T) {
	root := fxRoot(t)
	fs := fxStatfs{}
	for k, v := range fxMounts {
		fs[k] = v
	}
	delete(fs, "/home") // statfs fails: unmounted since the table was read
	c := fxDiskCollector(t, root, fs)
	if got := mountpoints(fxCollect(t, c, fxT0)); slices.Contains(got, "/home") {
		t.Fatalf("mounts %v include /home, whose statfs failed", got)
	}
	// A new mount: the failed statfs makes the next call re-read the table.
	mi := filepath.Join(root, "proc/1/mountinfo")
	b, _ := os.ReadFile(mi)
	b = append(b, "40 29 8:16 / /srv rw,relatime - ext4 /dev/sdb rw\n"...)
	if err := os.WriteFile(mi, b, 0o644); err != nil {
		t.Fatal(err)
	}
	fs["/srv"] = [3]uint64{1000, 500, 400}
	if got := mountpoints(fxCollect(t, c, fxT0.Add(time.Second))); !slices.Contains(got, "/srv") {
		t.Fatalf("mounts %v: /srv not seen after a failed statfs", got)
	}
	// With every statfs working, the table is re-read every MountRefresh.
	fs["/home"] = fxMounts["/home"]
	fxCollect(t, c, fxT0.Add(2*time.Second))
	b = append(b, "41 29 8:32 / /opt rw,relatime - ext4 /dev/sdc rw\n"...)
	if err := os.WriteFile(mi, b, 0o644); err != nil {
		t.Fatal(err)
	}
	fs["/opt"] = [3]uint64{1000, 900, 900}
	if got := mountpoints(fxCollect(t, c, fxT0.Add(3*time.Second))); slices.Contains(got, "/opt") {
		t.Fatalf("mounts %v: table re-read before MountRefresh", got)
	}
	if got := mountpoints(fxCollect(t, c, fxT0.Add(2*time.Second+MountRefresh))); !slices.Contains(got, "/opt") {
		t.Fatalf("mounts %v: /opt not seen after MountRefresh", got)
	}
}

func TestDiskAllStatfsFail(t *testing.T) {
	c := fxDiskCollector(t, fxRoot(t), fxStatfs{})
	_, err := c.Collect(t.Context(), fxT0)
	if err == nil || !strings.Contains(err.Error(), "statfs /home") {
		t.Fatalf("err = %v, want the statfs failures", err)
	}
}

func TestDiskNoMountTable(t *testing.T) {
	c := fxDiskCollector(t, t.TempDir(), fxMounts)
	if _, err := c.Collect(t.Context(), fxT0); err == nil {
		t.Fatal("no error without a mount table")
	}
}

func TestSelectMounts(t *testing.T) {
	in := []disk.PartitionStat{
		{Device: "/dev/sda1", Mountpoint: "/", Fstype: "ext4"},
		{Device: "/dev/loop3", Mountpoint: "/snap/x/1", Fstype: "squashfs"},
		{Device: "/dev/sr0", Mountpoint: "/media/cd", Fstype: "iso9660"},
		{Device: "/dev/sdb1", Mountpoint: "/mnt", Fstype: "ext4"},
		{Device: "/dev/sdb1", Mountpoint: "/srv", Fstype: "ext4"}, // the same file system again
		{Device: "/dev/sdc1", Mountpoint: "/mnt", Fstype: "vfat"}, // stacked on /mnt: hides sdb1 there
	}
	got := selectMounts(in)
	var names []string
	for _, p := range got {
		names = append(names, p.Device+" "+p.Mountpoint)
	}
	// sdb1 is hidden on /mnt, so /srv is where it shows.
	want := []string{"/dev/sda1 /", "/dev/sdb1 /srv", "/dev/sdc1 /mnt"}
	if !slices.Equal(names, want) {
		t.Errorf("selectMounts = %v, want %v", names, want)
	}
}

func TestDiskRealHost(t *testing.T) {
	c := fxCollector(t, "disk", Env{Hostname: "real"})
	steps := fxCollect(t, c, time.Now())
	parts, err := disk.Partitions(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) == 0 {
		if len(selectMounts(parts)) > 0 {
			t.Fatalf("no STEPs although %v are mounted", parts)
		}
		t.Skip("no device-backed file system on this host (container root on overlay)")
	}
	for _, s := range steps {
		t.Log(s.Event.Description)
		p := fxFloat(t, s, "disk_percent")
		total, used, free := fxFloat(t, s, "disk_total_bytes"), fxFloat(t, s, "disk_used_bytes"), fxFloat(t, s, "disk_free_bytes")
		if p < 0 || p > 100 || total <= 0 || used > total || free > total {
			t.Errorf("%s: percent %v total %v used %v free %v", s.Event.Description, p, total, used, free)
		}
	}
}
