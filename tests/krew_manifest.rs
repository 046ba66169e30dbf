//! `krew-manifest.yaml`, the template `scripts/package.sh` renders from, meets the krew-index rules:
//! a valid krew `Plugin` for linux, darwin and windows on amd64 and arm64, each shipping the LICENSE.

#[path = "support/krew.rs"]
mod krew;

use std::path::Path;

fn manifest() -> serde_json::Value {
    krew::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("krew-manifest.yaml"))
}

#[test]
fn template_meets_the_krew_index_rules() {
    krew::check_rules(&manifest());
}

#[test]
fn template_ships_the_license_file_of_the_repo() {
    let m = manifest();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let license = std::fs::read_to_string(root.join("LICENSE")).unwrap();
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"));
    for (os, arch) in [
        ("linux", "amd64"),
        ("darwin", "arm64"),
        ("windows", "amd64"),
    ] {
        let files = krew::platform(&m, os, arch)["files"].as_array().unwrap();
        assert!(
            files
                .iter()
                .any(|f| f["from"] == "LICENSE" && f["to"] == "."),
            "{os}/{arch}: {files:?}"
        );
    }
}
