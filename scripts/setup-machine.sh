#!/usr/bin/env bash
# Installs what the tests need and a fresh machine may lack. Idempotent; quiet when all is present.
set -euo pipefail
missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# kubectl is a peer in the tests; they say so and skip those comparisons when it is absent.
command -v kubectl >/dev/null 2>&1 || echo "setup: kubectl not found; tests that compare with kubectl will be skipped" >&2
exit 0
