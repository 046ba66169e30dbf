#!/usr/bin/env bash
# Benchmark: kubectl-backstage against kubectl on the same fake API server (200 pods, 10,000 events,
# TLS), in the same run. Prints median wall time and peak memory, and ratios against the targets:
#   health -o json (direct)          ≤ 0.30× `kubectl get pods -o json`
#   kubectl backstage health         ≤ 1.15× `kubectl get pods`            (through kubectl's plugin lookup)
#   events                           ≤ 0.50× `kubectl get events --sort-by=.lastTimestamp`, time and memory
# Usage: bench/health.sh            (BENCH_RUNS=9 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kubectl >/dev/null || { echo "bench: kubectl is needed as the peer" >&2; exit 2; }
cargo build --release --locked -q -p kubectl-backstage -p backstage-testkit
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
target/release/fake-apiserver --fixtures incident --pods 200 --events 10000 --tls \
  --kubeconfig-out "$work/kubeconfig" --context bench --namespace backstage >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$work/server.log" 2>/dev/null && break; sleep 0.1; done
grep -q "listening on" "$work/server.log" || { cat "$work/server.log" >&2; exit 2; }

export KUBECONFIG="$work/kubeconfig" HOME="$work/home" PATH="$PWD/target/release:$PATH"
mkdir -p "$HOME"
plugin="$PWD/target/release/kubectl-backstage"
python3 bench/compare.py <<JSON
[
  {"name": "kubectl-backstage health -o json  vs  kubectl get pods -o json",
   "ours": ["$plugin", "health", "-o", "json"], "peer": ["kubectl", "get", "pods", "-o", "json"],
   "time": 0.30, "memory": null, "ok_codes": [0, 1]},
  {"name": "kubectl backstage health  vs  kubectl get pods",
   "ours": ["kubectl", "backstage", "health"], "peer": ["kubectl", "get", "pods"],
   "time": 1.15, "memory": null, "ok_codes": [0, 1]},
  {"name": "kubectl-backstage events  vs  kubectl get events --sort-by",
   "ours": ["$plugin", "events"], "peer": ["kubectl", "get", "events", "--sort-by=.lastTimestamp"],
   "time": 0.50, "memory": 0.50, "ok_codes": [0]}
]
JSON
