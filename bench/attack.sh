#!/usr/bin/env bash
# Replays the name-service attacks of issue 11 against stkd (see
# bench/stkbench-attack; the monitor and STEP cases are bench/stkbench-attack-monitor): 1,000,000 registrations from one client, 5000 x 60 KB of
# meta-data, 80,000 subscriptions on one connection, GET /api/v1/names
# with up to 1,000,000 names and an open UI; 800 idle connections to a stkd
# limited to 256 open files (fd-exhaustion) and 500 slowloris connections.
# Prints one row per case:
# stkd's RSS, other clients' lookup latency, refusal counters.
#
# usage: bench/attack.sh [OLD-COMMIT] [attack flags]
#   with OLD-COMMIT, also builds that commit's stkd (in a git worktree under
#   /tmp) and runs every case against it first ("before"), then this tree's
#   ("after").
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/" ./stkd ./bench/stkbench-attack
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  old=$1; shift
  wt=/tmp/attack-old-$(git rev-parse --short "$old")
  [ -d "$wt" ] || git worktree add --detach "$wt" "$old" >/dev/null
  (cd "$wt" && go build -o "$bin/stkd-old" ./stkd)
  "$bin/stkbench-attack" --stkd "$bin/stkd-old" --label before "$@"
fi
"$bin/stkbench-attack" --stkd "$bin/stkd" --label after "$@"
