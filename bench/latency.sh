#!/usr/bin/env bash
# Measures the latency of STK flows across processes over loopback with
# bench/stkbench-latency (see its package doc):
#   - rtt: round trips, one outstanding, over a TCP flow (tcp: a goroutine
#     waits for each reply; tcp-chained: the reply's Handler sends the next
#     ping, no hand-off between goroutines), STK-UDP flows and a
#     raw net.Conn ping-pong of the same bytes (the floor), and NATS
#     request/reply (nats: a nats-server child, an echo client, a minimal
#     client of the NATS protocol: the floor of what NATS costs) when a
#     nats-server is on PATH; 100 000 per run, 3 runs interleaved, the
#     median of each figure per case, and each one's p50 and p99 against
#     the raw floor's;
#   - oneway: a publisher process at 10k, 100k and 1M sequences/s paced by
#     intended send times, latency = receiving Handler - intended time
#     (coordinated omission accounted for), and whether the rate was held;
#     --pace spin,gosched,yield compares how the publisher waits (default
#     yield: it gives the core to the subscriber and the flow's writer).
# Before and after the cases it measures the machine's hiccups (--hiccups D:
# a busy loop alone on each CPU; 0 skips it). With --pin the children
# (publisher, echo) run on CPU 0 and the measuring
# process on CPU 1, GOMAXPROCS 1 each, as latency benchmarks isolate cores.
# One summary line per case, a log-scale text histogram under it; --svg FILE
# writes the percentile curves. With --load, two busy loops keep both cores
# loaded during the runs. With --nats, the rtt cases include nats: if no
# nats-server is on PATH, it builds one first (go install
# github.com/nats-io/nats-server/v2@v2.15.3 into the script's temporary
# directory, removed at the end; this needs the network, or the module in
# Go's cache); with --rtt LIST, nats is added to LIST. Without --nats, nats
# runs only if a nats-server is on PATH, and a note says it was skipped
# otherwise. Every other flag goes to stkbench-latency (--help lists them:
# --count, --runs, --rates, --for, --size, --cases, --pin, --nats-server...).
#
# usage: bench/latency.sh [--load] [--nats] [--svg FILE] [stkbench-latency flags...]
set -euo pipefail
cd "$(dirname "$0")/.."

load=0 nats=0 args=()
for a in "$@"; do
  case "$a" in
    --load) load=1 ;;
    --nats) nats=1 ;;
    *) args+=("$a") ;;
  esac
done

bin=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin"' EXIT
go build -o "$bin/" ./bench/stkbench-latency

if [ $nats = 1 ]; then
  if ! command -v nats-server >/dev/null; then
    echo "# building nats-server v2.15.3 into $bin (go install: needs the network or Go's module cache)"
    GOBIN="$bin" go install github.com/nats-io/nats-server/v2@v2.15.3
    export PATH="$bin:$PATH"
  fi
  # An explicit --rtt list gets nats added; the default list takes it
  # because nats-server is now on PATH.
  for i in "${!args[@]}"; do
    case "${args[$i]}" in
      --rtt) j=$((i + 1)); [ $j -lt ${#args[@]} ] && [[ ",${args[$j]}," != *,nats,* ]] && args[$j]+=",nats" ;;
      --rtt=*) [[ ",${args[$i]#--rtt=}," != *,nats,* ]] && args[$i]+=",nats" ;;
    esac
  done
fi

if [ $load = 1 ]; then
  for _ in 1 2; do (while :; do :; done) & done
  echo "# (both cores loaded by two busy loops)"
fi

"$bin/stkbench-latency" "${args[@]}"
