#!/usr/bin/env bash
# Measures stepmon's overhead: stepmon at -i (1s) for -d seconds (60) against
# a real stkd (so the services collector reads stkd's HTTP API, and one
# monitored_service reports to stkd's monitor), with a subscriber connected
# to its feed (so every STEP is encoded and sent). stepmon runs with its
# default flags plus the ARGS after --; its console goes to a file.
#
# Reports the CPU used, in % of one core (utime+stime from /proc/PID/stat over
# the wall time, after a warm-up of -w seconds), the peak RSS (VmHWM) and the
# median RSS of one sample a second (VmRSS). Targets: <= 0.5 % and < 15 MB.
#
# usage: bench/stepmon.sh [-d SECONDS] [-i INTERVAL] [-w SECONDS] [-- STEPMON ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."

duration=60 interval=1s warmup=3
while getopts "d:i:w:h" opt; do
  case $opt in
    d) duration=$OPTARG ;;
    i) interval=$OPTARG ;;
    w) warmup=$OPTARG ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ "${1:-}" != "--" ] || shift

bin=$(mktemp -d /tmp/stepmon-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$bin"
}
trap cleanup EXIT
go build -o "$bin/" ./stkd ./stepmon ./examples/subscribe ./examples/monitored_service

# waitline FILE REGEX: wait (at most 10 s) for a line in FILE.
waitline() {
  for _ in $(seq 200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "no line matching '$2' in $1:" >&2
  cat "$1" >&2
  exit 1
}

"$bin/stkd" --names-tcp 127.0.0.1:0 --names-udp "" --monitor-tcp 127.0.0.1:0 --monitor-udp "" \
  --http 127.0.0.1:0 2>"$bin/stkd.log" &
pids+=($!)
waitline "$bin/stkd.log" 'msg="stkd running"'
line=$(grep 'msg="stkd running"' "$bin/stkd.log")
ns=$(sed -n 's/.* names_tcp=\([^ ]*\).*/\1/p' <<<"$line")
mon=$(sed -n 's/.* monitor_tcp=\([^ ]*\).*/\1/p' <<<"$line")
http=$(sed -n 's/.* http=\([^ ]*\).*/\1/p' <<<"$line")

"$bin/monitored_service" -m "tcp:$mon" -R "tcp:$ns" -S "stepmon bench service" >/dev/null 2>&1 &
pids+=($!)

name="step.bench-$$"
"$bin/stepmon" --interval "$interval" --name-server "tcp:$ns" --stkd-http "http://$http" --name "$name" \
  --directory "" "$@" >"$bin/stepmon.out" 2>"$bin/stepmon.log" &
spid=$!
pids+=($spid)
waitline "$bin/stepmon.log" 'msg="stepmon running"'

"$bin/subscribe" -q -R "tcp:$ns" "$name" >"$bin/subscribe.out" 2>&1 &
subpid=$!
pids+=($subpid)
waitline "$bin/subscribe.out" "Receiving '$name'"

sleep "$warmup"
# cputicks PID: utime+stime in clock ticks (fields 14 and 15; the command
# name in field 2 may hold spaces, so count after its closing parenthesis).
cputicks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
hz=$(getconf CLK_TCK)
c0=$(cputicks "$spid")
t0=$(date +%s.%N)
: >"$bin/rss"
for _ in $(seq "$duration"); do
  sleep 1
  awk '/^VmRSS:/ {print $2}' "/proc/$spid/status" >>"$bin/rss"
done
c1=$(cputicks "$spid")
t1=$(date +%s.%N)
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$spid/status")

kill -INT "$subpid"
wait "$subpid" 2>/dev/null || true
kill -TERM "$spid"
wait "$spid" 2>/dev/null || true
received=$(sed -n 's/^Received: \([0-9]*\) .*/\1/p' "$bin/subscribe.out")
lines=$(wc -l <"$bin/stepmon.out")

collectors=$(sed -n 's/.* collectors=\([^ ]*\) .*/\1/p' "$bin/stepmon.log")
skipped=$(sed -n 's/.* skipped=\([^ ]*\) .*/\1/p' "$bin/stepmon.log"); skipped=${skipped//\"/}
echo "stepmon --interval $interval $* for $duration s (after a $warmup s warm-up), $(nproc) cores"
echo "collectors: $collectors (skipped: $skipped)"
awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$hz" \
  'BEGIN { printf "CPU: %.3f %% of one core (%d ticks of 1/%d s over %.1f s)\n", (c1-c0)/hz/(t1-t0)*100, c1-c0, hz, t1-t0 }'
sort -n "$bin/rss" | awk -v hwm="$hwm" '{ v[NR] = $1 } END {
  m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
  printf "RSS (1 MB = 1e6 bytes): peak %.1f MB (VmHWM), median %.1f MB, min %.1f MB, max %.1f MB (VmRSS, %d samples)\n", hwm*1.024e-3, m*1.024e-3, v[1]*1.024e-3, v[NR]*1.024e-3, NR }'
echo "STEPs received by the subscriber: ${received:-?}; console lines: $lines"
if grep -q 'level=WARN\|level=ERROR' "$bin/stepmon.log"; then
  echo "stepmon warnings:"
  grep 'level=WARN\|level=ERROR' "$bin/stepmon.log" | head -20
fi
