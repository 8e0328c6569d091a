#!/usr/bin/env bash
# Measures the clustered name service with bench/stkbench-cluster (see its
# package doc): 3 name-server nodes + a 3-member etcd on loopback, stkd
# processes where one is killed or weighed; medians of 3 runs in one run:
#   - propagation delay A->C, p50/p99, at 1,000 and 10,000 registrations/s
#     (goal: p99 < 50 ms at 1,000/s);
#   - cluster registration throughput (goal: >= 20,000/s);
#   - lookup latency at a node with clustering on vs off (goal: within 10 %);
#   - time for the others to forget a killed node (goal: <= lease TTL + 1 s);
#   - re-sync time after an etcd outage with 100,000 names;
#   - node RSS with 100,000 remote names.
# Needs etcd (Debian's etcd-server: apt-get install etcd-server, or $STK_ETCD).
# etcd runs with --max-txn-ops 1024 (--etcd-max-txn-ops; etcd's default is
# 128, which the nodes adapt to). Every flag goes to stkbench-cluster (--help
# lists them: --runs, --rates, --names, --lease-ttl, --cases, -v for the
# nodes' counters and CPU time, --cpuprofile, --etcd-flag=--enable-pprof,
# --log-level...).
#
# usage: bench/cluster.sh [stkbench-cluster flags...]
set -euo pipefail
cd "$(dirname "$0")/.."

etcd=${STK_ETCD:-$(command -v etcd || echo /usr/bin/etcd)}
if [ ! -x "$etcd" ]; then
  echo "cluster.sh: no etcd server ($etcd): apt-get install etcd-server, or set STK_ETCD" >&2
  exit 2
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/" ./stkd ./bench/stkbench-cluster
"$bin/stkbench-cluster" --etcd "$etcd" --stkd "$bin/stkd" "$@"
