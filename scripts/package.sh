#!/usr/bin/env bash
# Release archives and the krew manifest, with no network.
#
#   scripts/package.sh VERSION [TARGET...]     build and pack each TARGET (default: the host's), then
#                                              render the manifest from the archives in dist/
#   scripts/package.sh --manifest-only VERSION render the manifest from the archives already in dist/
#   --require-all                              (either form) fail unless all six platforms are packed
#
# VERSION is Cargo.toml's version, with or without a leading v. TARGET is a Rust target triple
# (x86_64-unknown-linux-gnu, aarch64-apple-darwin, x86_64-pc-windows-msvc, …). Each is built with
# `cargo build --release --locked --target TARGET` and packed as kubectl-backstage_vX.Y.Z_<os>_<arch>.tar.gz
# (.zip for windows) holding the binary, LICENSE and README.md at its root. Then
# dist/krew-manifest.yaml is rendered from the committed krew-manifest.yaml (the template): the
# version, the URIs https://github.com/$KUBECTL_BACKSTAGE_REPO/releases/download/vX.Y.Z/<archive>
# (default: the repo of the template's homepage) and the real sha256 of each archive. A platform
# without an archive keeps the template's placeholder sum (a warning; an error with --require-all).
#
# Environment: DIST_DIR (default dist), KUBECTL_BACKSTAGE_REPO (owner/name), CARGO_TARGET_DIR,
# SOURCE_DATE_EPOCH (the archives' timestamps; default: the last commit's time, else 0),
# PACKAGE_SKIP_BUILD=1 (pack binaries already built). Bad input: one line on stderr, exit 2.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

fail() {
  echo "package: error: $*" >&2
  exit 2
}

manifest_only=false
require_all=false
args=()
for arg in "$@"; do
  case "$arg" in
  --manifest-only) manifest_only=true ;;
  --require-all) require_all=true ;;
  -*) fail "unknown flag $arg" ;;
  *) args+=("$arg") ;;
  esac
done
[ ${#args[@]} -ge 1 ] || fail "usage: scripts/package.sh [--manifest-only] [--require-all] VERSION [TARGET...]"
version=${args[0]#v}
targets=("${args[@]:1}")
cargo_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || fail "version ${args[0]} is not X.Y.Z"
[ "$version" = "$cargo_version" ] || fail "version $version is not Cargo.toml's ($cargo_version)"
if $manifest_only && [ ${#targets[@]} -gt 0 ]; then
  fail "--manifest-only takes no targets"
fi
# python3 packs the archives and renders the manifest (Windows runners may call it python).
python=$(command -v python3 || command -v python || true)
[ -n "$python" ] || fail "python3 is needed (it packs the archives and renders the manifest)"

dist=${DIST_DIR:-dist}
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
  export SOURCE_DATE_EPOCH
fi

if ! $manifest_only; then
  if [ ${#targets[@]} -eq 0 ]; then
    targets=("$(rustc -vV | sed -n 's/^host: //p')")
  fi
  # Check every target before building any.
  for target in "${targets[@]}"; do
    "$python" scripts/package.py platform "$target" >/dev/null || exit 2
  done
  for target in "${targets[@]}"; do
    if [ "${PACKAGE_SKIP_BUILD:-}" != 1 ]; then
      echo "package: building $target" >&2
      cargo build --release --locked --target "$target" >&2
    fi
    "$python" scripts/package.py pack "$version" "$target" "$target_dir/$target/release" "$dist"
  done
fi

render=("$python" scripts/package.py manifest "$version" "$dist")
$require_all && render+=(--require-all)
"${render[@]}"
