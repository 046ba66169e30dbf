//! Programs on PATH, the wrapper scripts tests put in front of them, and a local plugin package.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where `program` is on PATH; panics when it is not installed.
pub fn which(program: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} not on PATH"))
}

/// Writes an executable script (mode 0755).
pub fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `node_modules/@acme/plugin-demo-backend` under `checkout`: a `package.json` and the given
/// migration files (name, content). Returns the package's folder.
pub fn demo_plugin_package(checkout: &Path, migrations: &[(&str, String)]) -> PathBuf {
    let package = checkout.join("node_modules/@acme/plugin-demo-backend");
    std::fs::create_dir_all(package.join("migrations")).unwrap();
    std::fs::write(
        package.join("package.json"),
        r#"{"name":"@acme/plugin-demo-backend","version":"1.0.0"}"#,
    )
    .unwrap();
    for (file, content) in migrations {
        std::fs::write(package.join("migrations").join(file), content).unwrap();
    }
    package
}
