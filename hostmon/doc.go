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
//	service.process one per monitored service process: service, pid, cpu_percent, rss_bytes,
//	                threads, fds
//
// Events: process.start / process.exit (pid, ppid, name, cmdline), user.login /
// user.logout (user, terminal, host), file.create / file.write / file.remove /
// file.rename / file.chmod (path, op), and the alerts of the rules
// (e.g. system.cpu.high with level, value and threshold in space).
package hostmon
