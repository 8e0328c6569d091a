#!/usr/bin/env bash
# Measures the publishers of the language bindings against the Go subscribe
# example over loopback TCP, as bench/pubsub.sh does for Go -> Go: the Go
# examples/publish, the C bindings/c/examples/publish (libstk.so) and, with
# --python, bindings/python/examples/publish.py (ctypes over libstk.so; also
# with --send-many when it has that flag). Each sends N sequences of one
# SIZE-byte element with the same flags; the rate is what the subscriber
# received, first to last sequence, every sequence counted; 3 rounds, the
# publishers in turn within each round, median per publisher, and each
# publisher's peak RSS.
#
# usage: bench/bindings.sh [--python] [-n sequences] [-l size]
set -euo pipefail
cd "$(dirname "$0")/.."

n=1000000 size=1024 python=0
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python=1 ;;
    -n) n=$2; shift ;;
    -l) size=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "bindings.sh: unknown argument $1 (see -h)" >&2; exit 2 ;;
  esac
  shift
done

bin=$(mktemp -d /tmp/cbind-bench-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$bin"' EXIT
go build -o "$bin/" ./stkd ./examples/publish ./examples/subscribe
make -s -C bindings/c BUILD="$bin/c" lib examples >/dev/null

# The publishers: a label and a command line (the flags follow).
labels=(go c) cmds=("$bin/publish" "$bin/c/publish")
if [ $python = 1 ]; then
  py=bindings/python/examples/publish.py
  if [ ! -f $py ]; then
    echo "bindings.sh: --python: $py does not exist" >&2
    exit 1
  fi
  export STK_LIBRARY="$bin/c/libstk.so"
  labels+=(python) cmds+=("python3 $py")
  if python3 $py -h 2>/dev/null | grep -q -- --send-many; then
    labels+=(python-send-many) cmds+=("python3 $py --send-many")
  fi
fi

port=$((21000 + RANDOM % 2000))
"$bin/stkd" --names-tcp 127.0.0.1:$port --names-udp "" --monitor-tcp "" --monitor-udp "" --http "" --log-level warn &
sleep 0.3
ns=tcp:127.0.0.1:$port

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A rates mbs counts rss
for run in 1 2 3; do
  for i in "${!labels[@]}"; do
    label=${labels[$i]} name=bench-$label-$run-$RANDOM
    "$bin/subscribe" -R $ns -q -c "$n" "$name" > "$bin/sub.out" 2>&1 &
    sub=$!
    sleep 0.2
    # shellcheck disable=SC2086 # cmds hold a command and its arguments
    /usr/bin/time -f %M -o "$bin/pub.rss" ${cmds[$i]} -R $ns -i tcp:127.0.0.1:0 -s "$n" -a "$n" -l "$size" "$name" \
      > "$bin/pub.out" 2>&1 || { echo "$label publisher failed:"; cat "$bin/pub.out"; }
    if ! timeout 120 tail --pid=$sub -f /dev/null; then kill $sub; fi
    got=$(awk '/^Received:/ {print $2}' "$bin/sub.out")
    rate=$(awk '/^Received:/ {for (i=1;i<=NF;i++) if ($i=="sequences/s,") print $(i-1)}' "$bin/sub.out")
    mb=$(awk '/^Received:/ {for (i=1;i<=NF;i++) if ($i=="MB/s") print $(i-1)}' "$bin/sub.out")
    rates[$label]+="${rate:-0} " mbs[$label]+="${mb:-0} " counts[$label]+="${got:-0}/$n "
    r=$(cat "$bin/pub.rss")
    rss[$label]=$(( r > ${rss[$label]:-0} ? r : ${rss[$label]:-0} ))
  done
done

echo "publish -> Go subscribe, loopback TCP, $n sequences of $size bytes, median of 3"
printf "%-18s %14s %10s %10s %s\n" publisher "seq/s(median)" "MB/s" "pub RSS" "received/sent per run"
for label in "${labels[@]}"; do
  printf "%-18s %14s %10s %8sMB %s\n" "$label" "$(printf '%s\n' ${rates[$label]} | median)" \
    "$(printf '%s\n' ${mbs[$label]} | median)" $((rss[$label] / 1024)) "${counts[$label]}"
done
