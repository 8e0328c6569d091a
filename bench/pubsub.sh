#!/usr/bin/env bash
# Measures publish -> subscribe throughput across processes over loopback
# TCP: for each payload size, N sequences, 3 runs, median of the received
# rate (first to last sequence at the subscriber), every sequence counted,
# and each program's peak RSS. With --load, two busy loops keep both cores
# loaded during the runs (to check for loss under contention). With
# --iperf, first measures one loopback TCP stream with iperf3 as the
# bandwidth reference (needs iperf3).
#
# With --udp the publisher registers udp:127.0.0.1:PORT and sends there as
# fast as it can (STK-UDP has no flow control), the subscriber listening
# there with stk's 4 MiB receive buffer; a subscriber still short of N
# sequences 2 s after the publisher ended is interrupted, and each run says
# received/sent and what the subscriber counted lost (sequences given up,
# datagrams dropped by its full socket buffer: one dropped datagram can hold
# many sequences, the sender packing runs of them with UDP_SEGMENT). The
# rate column is then the subscriber's, first to last sequence received.
#
# With --pin the publisher runs on CPU 0 and the subscriber on CPU 1
# (taskset), each process with a core of its own, as latency and UDP
# benchmarks isolate cores; without it the scheduler places them.
#
# With --per-ms K the publisher sends K sequences then pauses 1 ms (its -a K
# -p 1), a rate of at most K thousand a second: for UDP, whether a
# subscriber keeps up with that rate without loss.
#
# usage: bench/pubsub.sh [--load] [--iperf] [--udp] [--pin] [--per-ms K] [-n sequences] [sizes...]
set -euo pipefail
cd "$(dirname "$0")/.."

n=1000000 load=0 iperf=0 udp=0 pin=0 batch=() sizes=()
while [ $# -gt 0 ]; do
  case "$1" in
    --load) load=1 ;;
    --iperf) iperf=1 ;;
    --udp) udp=1 ;;
    --pin) pin=1 ;;
    --per-ms) batch=(-a "$2" -p 1); shift ;;
    -n) n=$2; shift ;;
    *) sizes+=("$1") ;;
  esac
  shift
done
[ ${#sizes[@]} -gt 0 ] || sizes=(16 128 1024 16384)

bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin"' EXIT
go build -o "$bin/" ./stkd ./examples/publish ./examples/subscribe

if [ $iperf = 1 ]; then
  iperf3 -s -1 -p 25201 >/dev/null 2>&1 &
  sleep 0.5
  echo "iperf3, one loopback TCP stream: $(iperf3 -c 127.0.0.1 -p 25201 -t 5 -f m | awk '/receiver/ {print $7, $8}')"
fi

port=$((21000 + RANDOM % 2000))
"$bin/stkd" --names-tcp 127.0.0.1:$port --names-udp "" --log-level warn &
sleep 0.3
ns=tcp:127.0.0.1:$port

if [ $load = 1 ]; then
  for _ in 1 2; do (while :; do :; done) & done
  echo "(both cores loaded by two busy loops)"
fi

pubcpu=() subcpu=()
if [ $pin = 1 ]; then
  pubcpu=(taskset -c 0) subcpu=(taskset -c 1)
  echo "# publisher pinned to CPU 0, subscriber to CPU 1"
fi

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

pubif=() what="received/sent per run"
if [ $udp = 1 ]; then
  what="received/sent per run (sender's seq/s; lost: sequences given up, datagrams dropped)"
  echo "# STK-UDP over loopback, load average $(cut -d' ' -f1-3 /proc/loadavg)"
fi
printf "%8s %14s %12s %10s %10s %s\n" size "seq/s(median)" "MB/s" "pub RSS" "sub RSS" "$what"
for size in "${sizes[@]}"; do
  rates=() mbs=() counts=() prss=0 srss=0
  for run in 1 2 3; do
    name=bench-$size-$run-$RANDOM
    [ $udp = 0 ] || pubif=(-i "udp:127.0.0.1:$((23000 + RANDOM % 2000))")
    /usr/bin/time -f %M -o "$bin/sub.rss" "${subcpu[@]}" "$bin/subscribe" -R $ns -q -c "$n" "$name" > "$bin/sub.out" 2>&1 &
    sub=$!
    sleep 0.2
    /usr/bin/time -f %M -o "$bin/pub.rss" "${pubcpu[@]}" "$bin/publish" -R $ns "${pubif[@]}" -s "$n" -a "$n" "${batch[@]}" -l "$size" "$name" > "$bin/pub.out" 2>&1
    wait_sub=120
    [ $udp = 0 ] || wait_sub=2 # what was not received by then was lost
    if ! timeout $wait_sub tail --pid=$sub -f /dev/null; then
      # subscribe (the child of time, which ignores SIGINT) prints its
      # summary on SIGINT
      pkill -INT -P $sub
      timeout 10 tail --pid=$sub -f /dev/null || pkill -KILL -P $sub
    fi
    got=$(awk '/^Received:/ {print $2}' "$bin/sub.out")
    rate=$(awk '/^Received:/ {for (i=1;i<=NF;i++) if ($i=="sequences/s,") print $(i-1)}' "$bin/sub.out")
    mb=$(awk '/^Received:/ {for (i=1;i<=NF;i++) if ($i=="MB/s") print $(i-1)}' "$bin/sub.out")
    count="${got:-0}/$n"
    if [ $udp = 1 ]; then
      sent=$(awk '/^Sent / {for (i=1;i<=NF;i++) if ($i=="sequences/s,") print $(i-1)}' "$bin/pub.out")
      lost=$(awk '/^Lost:/ {print $2 "+" $9}' "$bin/sub.out")
      count="$count(${sent:-?}/s;lost ${lost:-0+0})"
    fi
    rates+=("$rate") mbs+=("$mb") counts+=("$count")
    # time's last line is the RSS (a "Command exited..." line may precede it)
    p=$(tail -1 "$bin/pub.rss") s=$(tail -1 "$bin/sub.rss")
    prss=$(( p > prss ? p : prss )) srss=$(( s > srss ? s : srss ))
  done
  printf "%8s %14s %12s %8sMB %8sMB %s\n" "$size" "$(printf '%s\n' "${rates[@]}" | median)" \
    "$(printf '%s\n' "${mbs[@]}" | median)" $((prss / 1024)) $((srss / 1024)) "${counts[*]}"
done
