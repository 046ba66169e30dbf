#!/usr/bin/env bash
# Benchmark: `kubectl-backstage db status` over every plugin database and migration table, against the
# real `knex migrate:status` run once per migration table, sequentially (what an operator does by hand),
# on the same PostgreSQL server in the same run. Target: at least 30x faster.
# Then over a slow network (a VPN to Azure): through a TCP proxy that delays every chunk 15 ms each way
# (BENCH_DELAY_MS), `db status` against one `psql -c 'select 1'` through the same proxy, in the same
# run. Target: at most 2.5x.
# Usage: bench/db-status.sh [PLUGINS]   (default 12 plugin databases, each with the catalog's migrations
# and the scheduler's prefixed table: 24 migration tables). BENCH_RUNS=N (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
plugins=${1:-12}
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cargo build --release --locked -q -p kubectl-backstage

# npm packages, cached: knex + pg, and two Backstage packages' migration folders.
npmdir="$PWD/target/bench-npm"
if [ ! -f "$npmdir/.ready" ]; then
  rm -rf "$npmdir" && mkdir -p "$npmdir/node_modules/@backstage"
  (cd "$npmdir" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent knex@3.3.0 pg@8 uuid@11 >/dev/null)
  for pkg in @backstage/plugin-catalog-backend@3.8.0 @backstage/backend-defaults@0.18.0; do
    tgz=$(cd "$npmdir" && npm pack --silent "$pkg")
    name=${pkg%@*}; mkdir -p "$npmdir/node_modules/$name"
    tar -xzf "$npmdir/$tgz" -C "$npmdir/node_modules/$name" --strip-components=1
  done
  touch "$npmdir/.ready"
fi
catalog="$npmdir/node_modules/@backstage/plugin-catalog-backend/migrations"
scheduler="$npmdir/node_modules/@backstage/backend-defaults/migrations/scheduler"

# A throwaway PostgreSQL on a free port (as the postgres user when run as root: initdb refuses root).
work=$(mktemp -d); chmod 755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
proxy_pid=
cleanup() {
  if [ -n "$proxy_pid" ]; then kill "$proxy_pid" 2>/dev/null || true; fi
  as_pg "$pgbin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"
}
trap cleanup EXIT
as_pg "$pgbin/initdb" -D "$work/data" -U bench --auth=trust >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/data" -w -l "$work/log" -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null

cat > "$npmdir/knexfile.js" <<'JS'
module.exports = {
  client: 'pg',
  connection: { host: '127.0.0.1', port: Number(process.env.BENCH_PGPORT), user: 'bench', password: 'x', database: process.env.BENCH_DB },
  migrations: { directory: process.env.BENCH_DIR, tableName: process.env.BENCH_TABLE },
};
JS
knex() { (cd "$npmdir" && NODE_PATH="$npmdir/node_modules" BENCH_PGPORT=$port BENCH_DB=$1 BENCH_DIR=$2 BENCH_TABLE=$3 node node_modules/knex/bin/cli.js --knexfile knexfile.js "${@:4}"); }
psql_bench() { psql -q -h 127.0.0.1 -p "$port" -U bench -d postgres -c "$1" >/dev/null; }

# One template migrated with the real knex, copied into every plugin database.
psql_bench "CREATE DATABASE bench_template"
knex bench_template "$catalog" knex_migrations migrate:latest >/dev/null
knex bench_template "$scheduler" backstage_backend_tasks__knex_migrations migrate:latest >/dev/null
ids=(catalog scaffolder auth search techdocs app proxy kubernetes permission notifications signals user-settings devtools todo linguist explore)
for i in $(seq 0 $((plugins - 1))); do
  id=${ids[$((i % ${#ids[@]}))]}
  if [ "$i" -ge ${#ids[@]} ]; then id="$id$i"; fi
  psql_bench "CREATE DATABASE \"backstage_plugin_$id\" TEMPLATE bench_template"
done

# The peer: knex migrate:status for every migration table, one after the other.
cat > "$work/knex-status-all.sh" <<SH
#!/usr/bin/env bash
cd "$npmdir"
for db in \$(psql -At -h 127.0.0.1 -p $port -U bench -d postgres -c "select datname from pg_database where datname like 'backstage\\_plugin\\_%'"); do
  NODE_PATH="$npmdir/node_modules" BENCH_PGPORT=$port BENCH_DB=\$db BENCH_DIR="$catalog" BENCH_TABLE=knex_migrations node node_modules/knex/bin/cli.js --knexfile knexfile.js migrate:status >/dev/null
  NODE_PATH="$npmdir/node_modules" BENCH_PGPORT=$port BENCH_DB=\$db BENCH_DIR="$scheduler" BENCH_TABLE=backstage_backend_tasks__knex_migrations node node_modules/knex/bin/cli.js --knexfile knexfile.js migrate:status >/dev/null
done
SH
chmod +x "$work/knex-status-all.sh"

# The slow network: every chunk, each way, is forwarded BENCH_DELAY_MS after it arrived (a latency,
# not a bandwidth limit: chunks in flight overlap, as on a real link).
delay_ms=${BENCH_DELAY_MS:-15}
proxy_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 bench/delay-proxy.py "$proxy_port" "$port" "$delay_ms" > "$work/proxy.out" 2>&1 &
proxy_pid=$!
for _ in $(seq 50); do grep -q ready "$work/proxy.out" 2>/dev/null && break; sleep 0.1; done

echo "$plugins plugin databases, $((plugins * 2)) migration tables; proxy: ${delay_ms} ms each way"
BENCH_RUNS=${BENCH_RUNS:-5} PGPASSWORD=x python3 bench/compare.py <<JSON
[
  {"name": "db status (all plugins, all tables)  vs  knex migrate:status per table",
   "ours": ["$PWD/target/release/kubectl-backstage", "db", "status", "--db-host", "127.0.0.1", "--db-port", "$port",
            "--db-user", "bench", "--sslmode", "disable", "--source", "$npmdir", "-o", "json"],
   "peer": ["$work/knex-status-all.sh"],
   "time": 0.0333, "memory": null, "ok_codes": [0, 1]},
  {"name": "db status via ${delay_ms} ms proxy  vs  one psql select 1",
   "ours": ["$PWD/target/release/kubectl-backstage", "db", "status", "--db-host", "127.0.0.1", "--db-port", "$proxy_port",
            "--db-user", "bench", "--sslmode", "disable", "--source", "$npmdir", "-o", "json"],
   "peer": ["psql", "-X", "-q", "host=127.0.0.1 port=$proxy_port user=bench dbname=postgres sslmode=disable", "-c", "select 1"],
   "time": 2.5, "memory": null, "ok_codes": [0, 1]}
]
JSON
