// Package hostmon gathers host data as STEP events (package step): the
// collectors a host monitor (the stepmon command) runs every interval, the
// watchers that report events as they happen, and the alert rules that
// turn metric values into WARNING, CRITICAL and recovery events.
//
// # Collectors
//
// A Collector is a small plug-in: New* functions build one from a Config;
// Registered lists them by name ("cpu", "memory", ...). Each keeps its
// parsing separate from its I/O, so tests run it against fixture /proc and
// /sys trees (Env.HostProc, Env.HostSys) with golden outputs. A collector
// that cannot work on this host (GPUs without NVML, say) returns an error
// wrapping ErrUnavailable and the monitor runs without it.
//
// # Metric events
//
// Periodic metric STEPs carry "kind": "metric" in their space; every other
// STEP is an event (an alert, a process start, a file change, a login).
// Their types and main fields, which the alert rules and the status UI read:
//
//	system.cpu      cpu_percent, per_core_percent [..], frequency_mhz, frequency_max_mhz,
//	                cores_physical, cores_logical, load1, load5, load15
//	system.memory   memory_percent, memory_total_bytes, memory_used_bytes, memory_available_bytes,
//	                swap_percent, swap_total_bytes, swap_used_bytes
//	system.disk     one per mount: mountpoint, device, fstype, disk_percent, disk_total_bytes,
//	                disk_used_bytes, disk_free_bytes
//	system.diskio   one per device: device, read_bytes_per_sec, write_bytes_per_sec, io_bytes_per_sec
//	system.network  one per interface: interface, rx_bytes_per_sec, tx_bytes_per_sec, bytes_per_sec,
//	                rx_packets_per_sec, tx_packets_per_sec
//	system.host     os, platform, platform_version, kernel, arch, boot_time (Unix ms), uptime_seconds
//	system.users    users (count), names [..]
//	system.gpu      one per device: gpu_index, gpu_name, gpu_uuid, driver_version, gpu_percent,
//	                gpu_memory_total_bytes, gpu_memory_used_bytes, gpu_memory_free_bytes,
//	                gpu_memory_percent, temperature_c, power_watts, power_limit_watts
//	system.processes processes (count), processes_running, processes_blocked, threads,
//	                forks_per_sec
//	service.process one per monitored service process: service, pid, cpu_percent, rss_bytes,
//	                threads, fds, process (its name), protocol, peer
//
// A field a source could not give this time (a GPU without power readings,
// a rate on the first sample) is left out rather than sent as zero.
//
// Events: process.start (pid, ppid, name, cmdline, cmdline_truncated,
// start_time) / process.exit (pid, ppid, name, start_time, runtime_seconds),
// system.processes.short_lived (count, period_seconds, per_minute,
// min_lifetime_seconds, top {name: count} of the ProcessSummaryTop most
// frequent names, others, distinct_names), user.login / user.logout (user, terminal, host), file.create / file.write /
// file.remove / file.rename / file.chmod (path, op, watch; count when
// notifications were coalesced), file.overflow (dropped, kernel_overflow),
// and the alerts of the rules (e.g. system.cpu.high with level, value and
// threshold in space).
//
// # Processes
//
// The processes collector compares the pids in /proc between intervals.
// Shell loops, cron helpers and health checks start and end processes by
// the hundred a minute; reporting each would bury the events that matter,
// so ProcessOptions (Config.Processes; stepmon's --process-* flags) say
// which are news:
//
//   - a process is reported by process.start only once it has run
//     MinLifetime (default 5 s): at the first scan that finds it that old,
//     with its real start_time. Its process.exit follows when it ends. A
//     process that ends younger yields neither, only a count;
//   - every SummaryInterval (default 1 min) that saw such short-lived
//     processes, one system.processes.short_lived event gives their count,
//     their rate and the most frequent command names. A process that starts
//     and ends between two scans is seen by neither (system.processes
//     forks_per_sec counts it);
//   - Include (when not empty) and Exclude are path.Match patterns on the
//     command name (comm, at most 15 bytes: "nginx", "python*"); Exclude
//     wins. A process left out is neither reported nor counted.
//
// # Alerts
//
// An Alerter applies Rules to metric STEPs. A rule reads one numeric field
// of one metric type, per instance when it names a key field, and has a
// WARNING and a CRITICAL threshold (a value at or above one is at its
// level). The defaults (DefaultRules; 1 MB = 1e6 bytes):
//
//	rule     metric          field             key         warning   critical  alert type
//	cpu      system.cpu      cpu_percent       -           80 %      95 %      system.cpu.high
//	memory   system.memory   memory_percent    -           80 %      90 %      system.memory.high
//	disk     system.disk     disk_percent      mountpoint  85 %      95 %      system.disk.high
//	diskio   system.diskio   io_bytes_per_sec  device      50 MB/s   100 MB/s  system.diskio.high
//	network  system.network  bytes_per_sec     interface   10 MB/s   20 MB/s   system.network.high
//	gpu      system.gpu      temperature_c     gpu_index   80 °C     90 °C     system.gpu.high
//
// The critical levels of disk I/O and network are twice their warning
// level (the design names only the warning); GPUs are judged by
// temperature, since a GPU at 100 % use is working as intended and one at
// 90 °C is near its slowdown point.
//
// One alert instance (rule and key: the CPU, the mount "/home", GPU 3) sends:
//
//   - an alert when its value enters WARNING or CRITICAL, with "level",
//     "value", "threshold" (the one crossed), "warning_threshold",
//     "critical_threshold", "rule", "metric", "field", the key field and
//     the metric's fields that explain it (Rule.Copy) in space, and a
//     description such as "memory use at 91% (critical threshold 90%)";
//   - an escalation from WARNING to CRITICAL at once, and a drop from
//     CRITICAL to WARNING as news too;
//   - nothing for a level it sent less than the cooldown ago (default
//     300 s, per instance and level): a value that stays high is reminded
//     once per cooldown, and flapping sends at most one alert per level per
//     cooldown;
//   - a recovery when the value falls below the warning threshold by the
//     hysteresis (default 5 % of the threshold: a warning at 80 % recovers
//     below 76 %; likewise CRITICAL is left below 95 % of its threshold).
//     The recovery has the alert's type and "level": "recovered" (so a
//     filter on "*.high" sees whole episodes, and the level tells them
//     apart), "previous_level", "recover_below" and "alert_seconds" (since
//     the episode began). It is sent only for an alert that was sent, and
//     without cooldown.
//
// An instance not reported for ten minutes (an unmounted disk, a removed
// interface) is forgotten; if it was alerting, a recovery with "stale":
// true says so. At most MaxAlertInstances are tracked.
//
// # Psychology
//
// Alert STEPs score: WARNING valence -0.4, intensity 0.6; CRITICAL -0.8,
// 0.9; recovered +0.4, 0.3. A metric STEP a rule reads gets, when its
// collector left its psychology at zero, a score from how close the value
// v is to the rule's thresholds W and C (the worst rule wins, values
// rounded to 0.01):
//
//	v < W:       p = max(v, 0)/W,      valence = 0.3 - 0.6 p,  intensity = 0.1 + 0.4 p
//	W <= v < C:  f = (v - W)/(C - W),  valence = -0.4 - 0.4 f, intensity = 0.6 + 0.3 f
//	v >= C:                            valence = -0.8,         intensity = 0.9
//
// An idle host is calm and mildly positive (+0.3, 0.1); half-way to the
// warning it is neutral; at each threshold the metric scores what its alert
// does.
//
// # Monitor
//
// A Monitor builds the named collectors (a collector that reports
// ErrUnavailable is logged once and left out), calls every collector once
// per interval with one time for all, runs the watchers (restarting one
// that fails, with a back-off capped at a minute), passes metric STEPs
// through the Alerter and hands every STEP, then its alerts, to the sinks,
// one at a time. A collector's errors are logged at most once a minute with
// the count of those in between.
package hostmon
