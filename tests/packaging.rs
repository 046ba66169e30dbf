//! `scripts/package.sh` on this machine for the host (linux/amd64): it builds the release binary,
//! packs `kubectl-backstage_vX.Y.Z_linux_amd64.tar.gz` with the binary, LICENSE and README.md at its
//! root, and renders `krew-manifest.yaml` whose sha256 is the archive's and whose `files`/`bin` are in
//! it. The archive is unpacked with `tar` and the binary inside is run. The release build happens once
//! per test binary (and reuses target/).

#[path = "support/krew.rs"]
mod krew;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use krew::VERSION;

const REPO: &str = "example-org/kubectl-backstage-fork";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/package.sh` with `args`, writing into `dist`: (exit code, stdout, stderr).
fn package(dist: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(root().join("scripts/package.sh"));
    cmd.args(args)
        .env("DIST_DIR", dist)
        .env("KUBECTL_BACKSTAGE_REPO", REPO);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .expect("scripts/package.sh runs (bash, python3, cargo)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A tool the test needs; fails loudly when it is missing.
fn tool(name: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(name)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{name} is needed by this test: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sha256_of(path: &Path) -> String {
    let out = tool("sha256sum", &[path.to_str().unwrap()], root());
    out.split_whitespace().next().unwrap().to_string()
}

struct Packed {
    _dir: tempfile::TempDir,
    dist: PathBuf,
    stderr: String,
}

/// Builds and packs once for all tests of this binary.
fn packed() -> &'static Packed {
    static PACKED: OnceLock<Packed> = OnceLock::new();
    PACKED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let dist = dir.path().join("dist");
        let (code, out, err) = package(&dist, &[VERSION], &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, "", "the script writes only to stderr");
        Packed {
            _dir: dir,
            dist,
            stderr: err,
        }
    })
}

#[test]
fn the_host_archive_holds_the_binary_license_and_readme_and_runs() {
    let packed = packed();
    let name = krew::archive_name("linux", "amd64");
    let archive = packed.dist.join(&name);
    let listing: BTreeSet<String> = tool("tar", &["-tzf", archive.to_str().unwrap()], root())
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        listing,
        ["LICENSE", "README.md", "kubectl-backstage"]
            .map(String::from)
            .into()
    );
    let unpacked = tempfile::tempdir().unwrap();
    tool("tar", &["-xzf", archive.to_str().unwrap()], unpacked.path());
    assert_eq!(
        std::fs::read(unpacked.path().join("LICENSE")).unwrap(),
        std::fs::read(root().join("LICENSE")).unwrap()
    );
    let version = tool("./kubectl-backstage", &["--version"], unpacked.path());
    assert!(
        version.starts_with(&format!("kubectl-backstage {VERSION} (commit ")),
        "{version}"
    );
    assert!(
        version.trim_end().ends_with(", x86_64-unknown-linux-gnu)"),
        "{version}"
    );

    // Every files/bin entry of the rendered manifest's platform is in the archive.
    let manifest = krew::read(&packed.dist.join("krew-manifest.yaml"));
    let platform = krew::platform(&manifest, "linux", "amd64");
    for file in platform["files"].as_array().unwrap() {
        let from = file["from"].as_str().unwrap();
        assert!(listing.contains(from), "{from} not in {listing:?}");
        assert_eq!(file["to"], ".");
    }
    let bin = platform["bin"].as_str().unwrap();
    assert!(listing.contains(bin), "{bin}");
}

#[test]
fn the_rendered_manifest_names_the_archive_by_its_real_sha256_and_uri() {
    let packed = packed();
    let manifest = krew::read(&packed.dist.join("krew-manifest.yaml"));
    krew::check_rules(&manifest);
    let name = krew::archive_name("linux", "amd64");
    let platform = krew::platform(&manifest, "linux", "amd64");
    assert_eq!(platform["sha256"], sha256_of(&packed.dist.join(&name)));
    assert_eq!(
        platform["uri"],
        format!("https://github.com/{REPO}/releases/download/v{VERSION}/{name}")
    );
    // The platforms not packed here keep the placeholder, and the script says so.
    for (os, arch) in [
        ("linux", "arm64"),
        ("darwin", "amd64"),
        ("darwin", "arm64"),
        ("windows", "amd64"),
        ("windows", "arm64"),
    ] {
        assert_eq!(
            krew::platform(&manifest, os, arch)["sha256"],
            "0".repeat(64),
            "{os}/{arch}"
        );
    }
    assert!(
        packed.stderr.contains(
            "package: warning: no archive for linux/arm64, darwin/amd64, darwin/arm64, windows/amd64, windows/arm64: placeholder sha256 kept"
        ),
        "{}",
        packed.stderr
    );
    // The rest of the template is kept as it is.
    let template = krew::read(&root().join("krew-manifest.yaml"));
    assert_eq!(manifest["metadata"], template["metadata"]);
    assert_eq!(
        manifest["spec"]["shortDescription"],
        template["spec"]["shortDescription"]
    );
    assert_eq!(
        manifest["spec"]["description"],
        template["spec"]["description"]
    );
}

/// Packing the same binary again gives the same bytes (sorted entries, fixed owner and times).
#[test]
fn archives_are_reproducible() {
    let packed = packed();
    let again = tempfile::tempdir().unwrap();
    let (code, _, err) = package(again.path(), &[VERSION], &[("PACKAGE_SKIP_BUILD", "1")]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("building"), "{err}");
    let name = krew::archive_name("linux", "amd64");
    assert_eq!(
        sha256_of(&again.path().join(&name)),
        sha256_of(&packed.dist.join(&name))
    );
}

/// `--require-all` (the release workflow's) refuses a manifest with a platform missing, and writes
/// nothing.
#[test]
fn require_all_refuses_missing_platforms_and_changes_nothing() {
    let packed = packed();
    let manifest = packed.dist.join("krew-manifest.yaml");
    let before = std::fs::read(&manifest).unwrap();
    let (code, out, err) = package(
        &packed.dist,
        &["--manifest-only", "--require-all", VERSION],
        &[],
    );
    assert_eq!(code, 2);
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "package: error: no archive in {} for linux/arm64, darwin/amd64, darwin/arm64, windows/amd64, windows/arm64\n",
            packed.dist.display()
        )
    );
    assert_eq!(std::fs::read(&manifest).unwrap(), before);
}

/// Arguments, extra environment, and the one error line expected.
type BadInput<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// Bad input: one error line, exit 2, nothing built or written.
#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    let cases: [BadInput; 6] = [
        (
            &[],
            &[],
            "package: error: usage: scripts/package.sh [--manifest-only] [--require-all] VERSION [TARGET...]\n",
        ),
        (
            &["9.9.9"],
            &[],
            &format!("package: error: version 9.9.9 is not Cargo.toml's ({VERSION})\n"),
        ),
        (
            &["latest"],
            &[],
            "package: error: version latest is not X.Y.Z\n",
        ),
        (
            &[VERSION, "sparc64-unknown-netbsd"],
            &[],
            "package: error: target sparc64-unknown-netbsd is not one of linux, darwin, windows on x86_64 or aarch64\n",
        ),
        (
            &["--sign", VERSION],
            &[],
            "package: error: unknown flag --sign\n",
        ),
        (
            &["--manifest-only", VERSION],
            &[("KUBECTL_BACKSTAGE_REPO", "not a repo")],
            "package: error: KUBECTL_BACKSTAGE_REPO not a repo is not owner/name\n",
        ),
    ];
    for (args, env, want) in cases {
        let mut cmd = Command::new(root().join("scripts/package.sh"));
        cmd.args(args)
            .env("DIST_DIR", &dist)
            .env("KUBECTL_BACKSTAGE_REPO", REPO);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8(out.stderr).unwrap(), want, "{args:?}");
        assert!(out.stdout.is_empty());
        let written: Vec<_> = std::fs::read_dir(&dist)
            .map(|d| d.collect())
            .unwrap_or_default();
        assert!(written.is_empty(), "{args:?} wrote {written:?}");
    }
}
