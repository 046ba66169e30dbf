#!/usr/bin/env python3
"""Builds data/releases.json, the compact release data `kubectl backstage version` embeds.

Input: the release manifests of every stable Backstage release (package -> version, from Backstage's
own versions repository, `v1/releases/<version>/manifest.json`), by default
../shared/data/backstage-release-manifests.json, plus the version map that `@backstage/create-app`
ships for its own release (`dist/lib/versions.cjs.js`, `packageVersions`, whose `root` is the release),
for releases the manifests file does not have yet. create-app's map covers only the ~75 packages a new
app starts with, so those releases are marked partial.

Output, per package, the releases that ship each of its versions, as ranges of indexes into the
ordered release list:

    {"source": "...", "releases": ["0.1.0", ...], "partial": {"1.55.0": "@backstage/create-app@0.9.2"},
     "packages": {"@backstage/plugin-catalog-backend": {"3.8.0": [[330, 331]], ...}, ...}}

Usage:
    scripts/update-release-data.py [--manifests FILE] [--create-app VERSION]... [--out FILE]

The create-app versions named in CREATE_APP_VERSIONS are always added; `--create-app` adds more
(`npm view @backstage/create-app versions --json` lists them; create-app 0.9.2 is Backstage 1.55.0).
Needs python3, npm and node.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_MANIFESTS = os.path.join(ROOT, "..", "shared", "data", "backstage-release-manifests.json")
DEFAULT_OUT = os.path.join(ROOT, "data", "releases.json")

# Releases after the manifests file's last (1.53.0), from create-app's own version map.
CREATE_APP_VERSIONS = ["0.9.1", "0.9.2"]


def version_key(text):
    """Sort key of a semver (pre-releases are not in the data)."""
    core = re.split(r"[-+]", text, maxsplit=1)[0]
    return tuple(int(part) if part.isdigit() else 0 for part in core.split("."))


def create_app_map(version):
    """The release and package versions that @backstage/create-app@VERSION was published with."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["npm", "pack", "--loglevel=error", "--pack-destination", tmp, f"@backstage/create-app@{version}"],
            check=True, capture_output=True, text=True, cwd=tmp,
        ).stdout
        tarball = [line.strip() for line in out.splitlines() if line.strip().endswith(".tgz")][-1]
        with tarfile.open(os.path.join(tmp, tarball)) as tar:
            tar.extractall(tmp, filter="data")
        versions = os.path.join(tmp, "package", "dist", "lib", "versions.cjs.js")
        if not os.path.exists(versions):
            sys.exit(f"@backstage/create-app@{version}: no dist/lib/versions.cjs.js; its layout changed")
        printed = subprocess.run(
            ["node", "-e", "process.stdout.write(JSON.stringify(require(process.argv[1]).packageVersions))", versions],
            check=True, capture_output=True, text=True,
        ).stdout
    mapping = json.loads(printed)
    release = mapping.pop("root")
    mapping = {name: v for name, v in mapping.items() if name.startswith("@")}
    mapping["@backstage/create-app"] = version
    return release, mapping


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", default=DEFAULT_MANIFESTS)
    parser.add_argument("--create-app", action="append", default=[])
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()

    with open(args.manifests) as f:
        manifests = json.load(f)
    releases = {r: m for r, m in manifests["releases"].items() if m}
    partial = {}
    for version in CREATE_APP_VERSIONS + args.create_app:
        release, mapping = create_app_map(version)
        if release in releases:
            continue
        releases[release] = mapping
        partial[release] = f"@backstage/create-app@{version}"

    order = sorted(releases, key=version_key)
    packages = {}
    for index, release in enumerate(order):
        for name, version in releases[release].items():
            ranges = packages.setdefault(name, {}).setdefault(version, [])
            if ranges and ranges[-1][1] == index - 1:
                ranges[-1][1] = index
            else:
                ranges.append([index, index])
    data = {
        "source": manifests["source"] + "; later releases from @backstage/create-app's version map (partial)",
        "releases": order,
        "partial": partial,
        "packages": {name: packages[name] for name in sorted(packages)},
    }
    with open(args.out, "w") as f:
        json.dump(data, f, separators=(",", ":"), sort_keys=False)
        f.write("\n")
    print(f"{args.out}: {len(order)} releases ({len(partial)} partial), {len(packages)} packages, "
          f"{os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
