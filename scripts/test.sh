#!/usr/bin/env bash
# The whole test suite: unit tests, and the real binary against a fake API server, a real PostgreSQL,
# the real knex CLI, real Backstage migration files from npm, and kubectl and psql as peers.
# Set-up (PostgreSQL server binaries, npm packages) is done here or by the tests themselves, and cached
# under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-machine.sh
# One PostgreSQL cluster per test binary is shared by its tests; keep test threads modest on 2 cores.
exec cargo test --locked --workspace --no-fail-fast "$@"
