//! The krew-index rules a plugin manifest must meet, checked on the committed template
//! (`krew-manifest.yaml`) and on the manifest `scripts/package.sh` renders: a `Plugin` named
//! `backstage` at Cargo.toml's version, a short description of at most 64 characters that does not
//! start with the name, known spec fields only, and for each of linux, darwin, windows × amd64, arm64
//! one platform whose uri ends with the archive name, a sha256, the binary (`.exe` on windows) as
//! `bin` and in `files`, and a license file in `files`.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap()
}

/// `kubectl-backstage_vX.Y.Z_<os>_<arch>.tar.gz` (`.zip` for windows).
pub fn archive_name(os: &str, arch: &str) -> String {
    let ext = if os == "windows" { "zip" } else { "tar.gz" };
    format!("kubectl-backstage_v{VERSION}_{os}_{arch}.{ext}")
}

pub fn binary(os: &str) -> &'static str {
    if os == "windows" {
        "kubectl-backstage.exe"
    } else {
        "kubectl-backstage"
    }
}

/// The platform entry of `os`/`arch`.
pub fn platform<'a>(m: &'a Value, os: &str, arch: &str) -> &'a Value {
    m["spec"]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["selector"]["matchLabels"]["os"] == os && p["selector"]["matchLabels"]["arch"] == arch
        })
        .unwrap_or_else(|| panic!("no platform {os}/{arch}"))
}

/// Every rule above; panics naming the first broken one.
pub fn check_rules(m: &Value) {
    assert_eq!(
        m["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(m["kind"], "Plugin");
    assert_eq!(m["metadata"]["name"], "backstage");
    let spec = &m["spec"];
    assert_eq!(
        spec["version"],
        format!("v{VERSION}"),
        "manifest version follows Cargo.toml"
    );
    let short = spec["shortDescription"].as_str().unwrap();
    assert!(
        !short.is_empty() && short.chars().count() <= 64,
        "krew wants a short description of at most 64 characters: {short:?}"
    );
    assert!(
        !short.to_lowercase().starts_with("backstage"),
        "krew: the short description must not start with the plugin's name: {short:?}"
    );
    assert!(spec["homepage"].as_str().unwrap().starts_with("https://"));
    let known: BTreeSet<&str> = [
        "version",
        "homepage",
        "shortDescription",
        "description",
        "caveats",
        "platforms",
    ]
    .into();
    for key in spec.as_object().unwrap().keys() {
        assert!(known.contains(key.as_str()), "unknown spec field {key}");
    }

    let platforms = spec["platforms"].as_array().unwrap();
    let mut seen = BTreeSet::new();
    for p in platforms {
        let labels = &p["selector"]["matchLabels"];
        let (os, arch) = (
            labels["os"].as_str().unwrap(),
            labels["arch"].as_str().unwrap(),
        );
        assert!(
            seen.insert((os.to_string(), arch.to_string())),
            "{os}/{arch} twice"
        );
        let bin = binary(os);
        assert_eq!(p["bin"], bin, "{os}/{arch}");
        let uri = p["uri"].as_str().unwrap();
        assert!(
            uri.starts_with("https://") && uri.ends_with(&format!("/{}", archive_name(os, arch))),
            "{os}/{arch}: {uri}"
        );
        let sha = p["sha256"].as_str().unwrap();
        assert!(
            sha.len() == 64
                && sha
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "sha256 of {os}/{arch}: {sha}"
        );
        let files: Vec<&str> = p["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["from"].as_str().unwrap())
            .collect();
        assert!(files.contains(&bin), "{os}/{arch} must ship {bin}");
        assert!(
            files.iter().any(|f| f.to_uppercase().contains("LICENSE")),
            "{os}/{arch} must ship a license file: {files:?}"
        );
    }
    let want: BTreeSet<(String, String)> = ["linux", "darwin", "windows"]
        .iter()
        .flat_map(|os| {
            ["amd64", "arm64"]
                .iter()
                .map(move |arch| (os.to_string(), arch.to_string()))
        })
        .collect();
    assert_eq!(seen, want);
}
