#!/usr/bin/env bash
# Measures stkd's service monitor with real processes (see bench/stkbench-monitor):
#
#   detect   kill -9 a monitored_service; time until stkd has it timed out,
#            p50/p99/max over 20 kills at 100 ms, 500 ms (default) and 1 s beats
#   load     50 services for 10 minutes with every core busy; false timeouts
#   sigstop  stkd paused with SIGSTOP for 2 s, 5 times; false timeouts
#   scale    10,000 services at 2 Hz; stkd's CPU and RSS over 60 s, timeouts
#   all      the four, load for --duration (default 10m)
#
# usage: bench/monitor.sh MODE [flags]   (bench/monitor.sh MODE -h for the flags)
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -gt 0 ] || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/" ./stkd ./examples/monitored_service ./bench/stkbench-monitor

if [ "$1" = all ]; then
  shift
  "$bin/stkbench-monitor" detect --bin "$bin"
  "$bin/stkbench-monitor" sigstop --bin "$bin"
  "$bin/stkbench-monitor" scale --bin "$bin"
  "$bin/stkbench-monitor" load --bin "$bin" "$@"
else
  mode=$1; shift
  "$bin/stkbench-monitor" "$mode" --bin "$bin" "$@"
fi
