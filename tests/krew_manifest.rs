//! `krew-manifest.yaml` is a valid krew `Plugin` for linux, darwin and windows on amd64 and arm64.

use std::collections::BTreeSet;

use serde_json::Value;

fn manifest() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/krew-manifest.yaml"))
        .unwrap();
    serde_norway::from_str(&text).unwrap()
}

#[test]
fn manifest_is_a_krew_plugin_named_backstage() {
    let m = manifest();
    assert_eq!(
        m["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(m["kind"], "Plugin");
    assert_eq!(m["metadata"]["name"], "backstage");
    let spec = &m["spec"];
    assert_eq!(
        spec["version"],
        format!("v{}", env!("CARGO_PKG_VERSION")),
        "manifest version follows Cargo.toml"
    );
    let short = spec["shortDescription"].as_str().unwrap();
    assert!(
        !short.is_empty() && short.len() <= 64,
        "krew wants a short description: {short:?}"
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
}

#[test]
fn every_platform_has_a_uri_a_sha256_and_the_right_binary() {
    let m = manifest();
    let platforms = m["spec"]["platforms"].as_array().unwrap();
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
        let bin = if os == "windows" {
            "kubectl-backstage.exe"
        } else {
            "kubectl-backstage"
        };
        assert_eq!(p["bin"], bin, "{os}/{arch}");
        let uri = p["uri"].as_str().unwrap();
        assert!(
            uri.starts_with("https://") && uri.contains(&format!("{os}_{arch}")),
            "{uri}"
        );
        let sha = p["sha256"].as_str().unwrap();
        assert!(
            sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()),
            "sha256 of {os}/{arch}: {sha}"
        );
        let files = p["files"].as_array().unwrap();
        assert!(
            files.iter().any(|f| f["from"] == bin),
            "{os}/{arch} archive must ship {bin}"
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
