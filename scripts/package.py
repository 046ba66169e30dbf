#!/usr/bin/env python3
"""The packing half of scripts/package.sh (python3's standard library only, so it runs the same on
Linux, macOS and Windows runners): an archive per target, and the krew manifest rendered from the
committed template and the archives present.

  package.py platform TARGET                  print "<os> <arch>" of a Rust target triple
  package.py pack VERSION TARGET BINDIR DIST  pack BINDIR's binary, LICENSE and README.md
  package.py manifest VERSION DIST [--require-all]

Archives are reproducible: sorted entries, owner root, mtime $SOURCE_DATE_EPOCH.
"""

import gzip
import hashlib
import io
import os
import re
import sys
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLATFORMS = [(os_, arch) for os_ in ("linux", "darwin", "windows") for arch in ("amd64", "arm64")]
PLACEHOLDER = "0" * 64


def fail(message):
    print(f"package: error: {message}", file=sys.stderr)
    sys.exit(2)


def platform(target):
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(target.split("-")[0])
    if target.endswith("-apple-darwin"):
        os_ = "darwin"
    elif "-linux-" in target:
        os_ = "linux"
    elif "-windows-" in target:
        os_ = "windows"
    else:
        os_ = None
    if arch is None or os_ is None:
        fail(f"target {target} is not one of linux, darwin, windows on x86_64 or aarch64")
    return os_, arch


def archive_name(version, os_, arch):
    ext = "zip" if os_ == "windows" else "tar.gz"
    return f"kubectl-backstage_v{version}_{os_}_{arch}.{ext}"


def mtime():
    try:
        return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    except ValueError:
        fail("SOURCE_DATE_EPOCH is not a number of seconds")


def pack(version, target, bindir, dist):
    os_, arch = platform(target)
    binary = "kubectl-backstage.exe" if os_ == "windows" else "kubectl-backstage"
    entries = [
        (binary, os.path.join(bindir, binary), 0o755),
        ("LICENSE", os.path.join(ROOT, "LICENSE"), 0o644),
        ("README.md", os.path.join(ROOT, "README.md"), 0o644),
    ]
    for _, path, _ in entries:
        if not os.path.isfile(path):
            fail(f"{path} does not exist (build {target} first)")
    name = archive_name(version, os_, arch)
    out = os.path.join(dist, name)
    when = mtime()
    if os_ == "windows":
        stamp = max(when, 315532800)  # zip cannot hold times before 1980
        import time

        date_time = time.gmtime(stamp)[:6]
        with zipfile.ZipFile(out + ".tmp", "w", zipfile.ZIP_DEFLATED) as z:
            for arcname, path, mode in sorted(entries):
                info = zipfile.ZipInfo(arcname, date_time)
                info.external_attr = (0o100000 | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as f:
                    z.writestr(info, f.read())
    else:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
            for arcname, path, mode in sorted(entries):
                info = t.gettarinfo(path, arcname)
                info.mode, info.mtime = mode, when
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                with open(path, "rb") as f:
                    t.addfile(info, f)
        with open(out + ".tmp", "wb") as f:
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=when) as gz:
                gz.write(raw.getvalue())
    os.replace(out + ".tmp", out)
    print(f"package: wrote {out}", file=sys.stderr)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(version, dist, require_all):
    with open(os.path.join(ROOT, "krew-manifest.yaml"), encoding="utf-8") as f:
        template = f.read().splitlines()
    repo = os.environ.get("KUBECTL_BACKSTAGE_REPO")
    if not repo:
        homepage = next((l for l in template if l.strip().startswith("homepage:")), "")
        found = re.search(r"https://github\.com/([^/\s]+/[^/\s]+?)/?$", homepage.strip())
        if not found:
            fail("the template's homepage names no GitHub repo; set KUBECTL_BACKSTAGE_REPO")
        repo = found.group(1)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo):
        fail(f"KUBECTL_BACKSTAGE_REPO {repo} is not owner/name")
    out, current, seen, missing = [], None, set(), []
    for line in template:
        labels = re.search(r"matchLabels:\s*\{os:\s*(\w+),\s*arch:\s*(\w+)\}", line)
        if labels:
            current = (labels.group(1), labels.group(2))
            seen.add(current)
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped.startswith("version:") and indent == "  ":
            line = f"  version: v{version}"
        elif stripped.startswith("uri:") and current:
            name = archive_name(version, *current)
            line = f"{indent}uri: https://github.com/{repo}/releases/download/v{version}/{name}"
        elif stripped.startswith("sha256:") and current:
            path = os.path.join(dist, archive_name(version, *current))
            if os.path.isfile(path):
                line = f'{indent}sha256: "{sha256(path)}"'
            else:
                line = f'{indent}sha256: "{PLACEHOLDER}"'
                missing.append(current)
        elif stripped.startswith("#"):
            continue
        out.append(line)
    if seen != set(PLATFORMS):
        fail("the template krew-manifest.yaml must name linux, darwin and windows on amd64 and arm64")
    if missing:
        names = ", ".join(f"{o}/{a}" for o, a in missing)
        if require_all:
            fail(f"no archive in {dist} for {names}")
        print(f"package: warning: no archive for {names}: placeholder sha256 kept", file=sys.stderr)
    header = [
        f"# krew plugin manifest of kubectl-backstage v{version}, rendered by scripts/package.sh from",
        "# krew-manifest.yaml and the release archives.",
    ]
    path = os.path.join(dist, "krew-manifest.yaml")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(header + out) + "\n")
    print(f"package: wrote {path}", file=sys.stderr)


def main(argv):
    if len(argv) == 2 and argv[0] == "platform":
        print(*platform(argv[1]))
    elif len(argv) == 5 and argv[0] == "pack":
        pack(argv[1], argv[2], argv[3], argv[4])
    elif len(argv) in (3, 4) and argv[0] == "manifest":
        if len(argv) == 4 and argv[3] != "--require-all":
            fail(f"unknown flag {argv[3]}")
        manifest(argv[1], argv[2], len(argv) == 4)
    else:
        fail("usage: package.py platform TARGET | pack VERSION TARGET BINDIR DIST | manifest VERSION DIST [--require-all]")


if __name__ == "__main__":
    main(sys.argv[1:])
