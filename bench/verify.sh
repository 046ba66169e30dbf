#!/usr/bin/env bash
# Benchmark: `verify` against a real Backstage 1.55.0 backend (the test rig's npm install under
# target/backstage-backend/, a throwaway PostgreSQL 15), in the same run:
#   verify's wall time (the whole process)  ≤ 1.2× its slowest single check (max latencyMs of -o json):
#       the checks run concurrently, so the total is the slowest check plus start-up, not the sum;
#   the peer: curl of the same 10 URLs in sequence, one process (`--next`), as a person would check.
# Twice: on loopback (the backend answers in a few ms, so the plugin's fixed ~3 ms start-up weighs
# most), and through bench/delay-proxy.py adding BENCH_DELAY_MS (15) each way, as between a laptop on a
# VPN and the portal. The 1.2x target is checked over the network; loopback is reported.
# Usage: bench/verify.sh   (BENCH_RUNS=15 by default; run `cargo test --test verify` once first, which
# installs the backend)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/target/backstage-backend/1.55.0-l1"
[ -f "$root/.complete" ] || { echo "bench: no backend in $root; run \`cargo test --test verify\` once first" >&2; exit 2; }
command -v curl >/dev/null || { echo "bench: curl is needed as the peer" >&2; exit 2; }
pg_bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
cargo build --release --locked -q -p kubectl-backstage
plugin="$PWD/target/release/kubectl-backstage"

work=$(mktemp -d)
backend=""
proxy=""
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
cleanup() {
  [ -n "$backend" ] && kill "$backend" 2>/dev/null || true
  [ -n "$proxy" ] && kill "$proxy" 2>/dev/null || true
  as_pg "$pg_bin/pg_ctl -D $work/pg -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# PostgreSQL: trust on loopback (a benchmark, not a test of authentication).
[ "$(id -u)" = 0 ] && chown postgres "$work"
pg_port=$(free_port)
as_pg "$pg_bin/initdb -D $work/pg -U postgres --auth=trust >/dev/null"
as_pg "$pg_bin/pg_ctl -D $work/pg -o '-p $pg_port -k $work -c listen_addresses=127.0.0.1' -l $work/pg.log -w start >/dev/null"

port=$(free_port)
token="bench-static-token-9d3e"
mkdir -p "$work/techdocs"
cat >"$work/catalog-info.yaml" <<'YAML'
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: petstore
  annotations:
    backstage.io/techdocs-ref: dir:.
spec: {type: service, lifecycle: production, owner: team-a}
---
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: new-service, title: New service}
spec:
  owner: team-a
  type: service
  parameters:
    - title: Service
      properties: {name: {title: Name, type: string}}
  steps:
    - {id: log, name: Log, action: 'debug:log', input: {message: hello}}
YAML
cat >"$work/app-config.yaml" <<YAML
app: {baseUrl: http://127.0.0.1:$port}
backend:
  baseUrl: http://127.0.0.1:$port
  listen: {host: 127.0.0.1, port: $port}
  database:
    client: pg
    prefix: bench_plugin_
    connection: {host: 127.0.0.1, port: $pg_port, user: postgres}
  auth:
    externalAccess:
      - type: static
        options:
          token: \${KBS_BACKEND_TOKEN}
          subject: bench
auth:
  environment: development
  providers:
    github: {development: {clientId: dummy-client-id, clientSecret: dummy-client-secret}}
catalog:
  rules: [{allow: [Component, Template, Location]}]
  locations: [{type: file, target: $work/catalog-info.yaml}]
techdocs:
  builder: local
  generator: {runIn: local}
  publisher: {type: local, local: {publishDirectory: $work/techdocs}}
YAML
(cd "$root" && NODE_ENV=production KBS_BACKEND_TOKEN="$token" exec node index.js --config "$work/app-config.yaml" >"$work/backend.log" 2>&1) &
backend=$!
base="http://127.0.0.1:$port"
for _ in $(seq 600); do
  kill -0 "$backend" 2>/dev/null || break
  n=$(curl -s -H "Authorization: Bearer $token" "$base/api/catalog/entities/by-query?limit=1&fields=kind" 2>/dev/null \
      | python3 -c 'import json,sys; print(json.load(sys.stdin).get("totalItems",0))' 2>/dev/null || echo 0)
  [ "$n" -ge 3 ] && break
  sleep 0.2
done
[ "$n" -ge 3 ] || { tail -20 "$work/backend.log" >&2; echo "bench: the backend did not come up" >&2; exit 2; }

delay_ms=${BENCH_DELAY_MS:-15}
proxy_port=$(free_port)
python3 bench/delay-proxy.py "$proxy_port" "$port" "$delay_ms" >"$work/proxy.out" 2>&1 &
proxy=$!
for _ in $(seq 50); do grep -q ready "$work/proxy.out" 2>/dev/null && break; sleep 0.1; done

export BENCH_TOKEN="$token"
python3 - "$plugin" "$base" "http://127.0.0.1:$proxy_port" "$delay_ms" <<'PY'
import json, os, statistics, subprocess, sys, time
plugin, loopback, delayed, delay_ms = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
runs = int(os.environ.get("BENCH_RUNS", "15"))
auth = ["-H", "Authorization: Bearer " + os.environ["BENCH_TOKEN"]]
fields = "fields=kind,metadata.namespace,metadata.name"
urls = [  # the requests verify makes, in the order a person would make them
    ([], "/.backstage/health/v1/readiness"),
    ([], "/.backstage/health/v1/liveness"),
    ([], "/api/auth/github/start?env=development"),
    (auth, f"/api/catalog/entities/by-query?limit=1&{fields}"),
    ([], f"/api/catalog/entities/by-query?limit=1&{fields}"),
    (auth, f"/api/catalog/entities/by-query?filter=kind=template&limit=1&{fields}"),
    (auth, "/api/scaffolder/v2/templates/default/template/new-service/parameter-schema"),
    (auth, f"/api/catalog/entities/by-query?filter=metadata.annotations.backstage.io/techdocs-ref&limit=1&{fields}"),
    (auth, "/api/techdocs/metadata/entity/default/component/petstore"),
    (auth, "/api/techdocs/metadata/techdocs/default/component/petstore"),
]
def timed(argv):
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True)
    return time.perf_counter() - start, out

def measure(label, base):
    curl = ["curl", "-s", "-o", "/dev/null"]
    for i, (headers, path) in enumerate(urls):
        curl += (["--next", "-s", "-o", "/dev/null"] if i else []) + headers + [base + path]
    ours = [plugin, "verify", "--url", base, "--token-env", "BENCH_TOKEN", "--auth-provider", "github", "-o", "json"]
    walls, slowest, ratios, peers = [], [], [], []
    timed(ours); timed(curl)  # warm up
    for _ in range(runs):
        wall, out = timed(ours)
        if out.returncode != 0:
            sys.exit(f"bench: verify exited {out.returncode}: {out.stdout}{out.stderr}")
        worst = max(c["latencyMs"] for c in json.loads(out.stdout)["checks"]) / 1000.0
        walls.append(wall); slowest.append(worst); ratios.append(wall / worst)
        wall, out = timed(curl)
        if out.returncode != 0:
            sys.exit(f"bench: curl exited {out.returncode}")
        peers.append(wall)
    med = statistics.median
    ratio = med(ratios)
    print(f"{label} ({runs} runs)")
    print(f"  verify wall (whole process)           median {med(walls)*1000:7.1f} ms")
    print(f"  slowest single check (latencyMs)      median {med(slowest)*1000:7.1f} ms")
    print(f"  curl of the same 10 URLs in sequence  median {med(peers)*1000:7.1f} ms")
    print(f"  verify / slowest check                median {ratio:5.2f}x")
    print(f"  verify / curl in sequence             median {med(walls)/med(peers):5.2f}x")
    return ratio

measure("loopback", loopback)
ratio = measure(f"through a {delay_ms} ms proxy each way", delayed)
print(f"verify over the network / its slowest check: {ratio:.2f}x (target <= 1.20x)  {'ok' if ratio <= 1.2 else 'MISSED'}")
sys.exit(0 if ratio <= 1.2 else 1)
PY
