//! What one version of Backstage is made of, for `version`: its `backstage.json`, every `@backstage/*`
//! package and every other package that ships migrations (with `backstage.pluginId` and
//! `backstage.role` from its `package.json`), and its placed migration folders. Read from a local tree
//! here, or from a running pod by the listing script of [`super::pod`] (one exec for everything), or
//! from an image in a preflight pod ([`super::image`]).
//! Only the top level of `node_modules` (and its scopes) is read, as for migrations: nested copies
//! are not what the backend loads for a plugin.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::source::{SourceError, package_dirs, package_tables};
use crate::knex::packages::MigrationTableSource;
use crate::kube::Cluster;
pub use crate::model::version::InstalledPackage;
use crate::options::SourceSpec;

/// A `backstage.json` found at the app root.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BackstageJson {
    pub path: String,
    pub text: String,
}

/// One version's packages and files.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// `dir:/path` or `pod:NAME`.
    pub source: String,
    pub installed: Vec<InstalledPackage>,
    pub tables: Vec<MigrationTableSource>,
    pub backstage_json: Option<BackstageJson>,
}

/// Reads a version from a local tree, a pod or an image (`cluster` is needed for a pod or an image;
/// `progress` hears how an image's preflight pod is doing).
pub async fn load(
    spec: &SourceSpec,
    cluster: Result<&Cluster, &crate::kube::KubeError>,
    progress: &dyn Fn(super::image::ProgressEvent),
) -> Result<Inventory, SourceError> {
    match spec {
        SourceSpec::Image(image) => {
            let cluster = cluster.map_err(|e| SourceError::ImageNoCluster {
                image: image.clone(),
                cause: e.to_string(),
            })?;
            Ok(super::image::image_inventory(cluster, image, progress)
                .await?
                .inventory)
        }
        SourceSpec::Dir(path) => {
            let path = path.clone();
            let for_error = path.clone();
            tokio::task::spawn_blocking(move || local_inventory(&path))
                .await
                .map_err(|e| SourceError::Local {
                    path: for_error,
                    message: e.to_string(),
                })?
        }
        SourceSpec::Pod(named) => {
            let cluster = cluster.map_err(|e| SourceError::NoCluster(e.to_string()))?;
            Ok(super::pod::pod_inventory(cluster, named.as_deref()).await?)
        }
    }
}

/// A local checkout (a folder with `node_modules`) or a `node_modules` folder.
pub fn local_inventory(path: &Path) -> Result<Inventory, SourceError> {
    let err = |message: String| SourceError::Local {
        path: path.to_path_buf(),
        message,
    };
    let (node_modules, app_root) = if path.file_name().is_some_and(|n| n == "node_modules") {
        (path.to_path_buf(), path.parent().map(Path::to_path_buf))
    } else if path.join("node_modules").is_dir() {
        (path.join("node_modules"), Some(path.to_path_buf()))
    } else {
        return Err(err(
            "has no node_modules: name a checkout with installed dependencies, or its node_modules"
                .into(),
        ));
    };
    let mut installed = Vec::new();
    let mut tables = Vec::new();
    for dir in package_dirs(&node_modules).map_err(|e| err(e.to_string()))? {
        let Some(package) = read_package(&dir) else {
            continue;
        };
        let found = package_tables(&dir).map_err(|e| err(e.to_string()))?;
        if !found.is_empty() || package.package.starts_with("@backstage/") {
            installed.push(package);
        }
        tables.extend(found);
    }
    let mut places: Vec<PathBuf> = Vec::new();
    if let Some(root) = &app_root {
        places.push(root.clone());
        if let Some(parent) = root.parent() {
            places.push(parent.to_path_buf());
        }
    }
    let backstage_json = places.iter().find_map(|place| {
        let file = place.join("backstage.json");
        std::fs::read_to_string(&file)
            .ok()
            .map(|text| BackstageJson {
                path: file.display().to_string(),
                text: text.chars().take(4096).collect(),
            })
    });
    Ok(Inventory {
        source: format!("dir:{}", path.display()),
        installed,
        tables,
        backstage_json,
    })
}

fn read_package(dir: &Path) -> Option<InstalledPackage> {
    let text = std::fs::read_to_string(dir.join("package.json")).ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
    let text_of = |v: &serde_json::Value| v.as_str().map(str::to_string);
    Some(InstalledPackage {
        package: text_of(&manifest["name"])?,
        version: text_of(&manifest["version"]).unwrap_or_default(),
        plugin_id: text_of(&manifest["backstage"]["pluginId"]),
        role: text_of(&manifest["backstage"]["role"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_checkout_lists_backstage_packages_migrations_and_its_backstage_json() {
        let dir = tempfile::tempdir().unwrap();
        let nm = dir.path().join("node_modules");
        write(
            &dir.path().join("backstage.json"),
            r#"{"version":"1.52.0"}"#,
        );
        write(
            &nm.join("@backstage/plugin-catalog-backend/package.json"),
            r#"{"name":"@backstage/plugin-catalog-backend","version":"3.8.0","backstage":{"role":"backend-plugin","pluginId":"catalog"}}"#,
        );
        write(
            &nm.join("@backstage/plugin-catalog-backend/migrations/20200511113813_init.js"),
            "",
        );
        write(
            &nm.join("@backstage/config/package.json"),
            r#"{"name":"@backstage/config","version":"1.3.9"}"#,
        );
        write(
            &nm.join("@acme/plugin-x-backend/package.json"),
            r#"{"name":"@acme/plugin-x-backend","version":"0.1.0"}"#,
        );
        write(&nm.join("@acme/plugin-x-backend/migrations/1_a.js"), "");
        write(
            &nm.join("left-pad/package.json"),
            r#"{"name":"left-pad","version":"1.0.0"}"#,
        );
        for path in [dir.path().to_path_buf(), nm.clone()] {
            let inv = local_inventory(&path).unwrap();
            let names: Vec<(&str, &str, Option<&str>)> = inv
                .installed
                .iter()
                .map(|p| {
                    (
                        p.package.as_str(),
                        p.version.as_str(),
                        p.plugin_id.as_deref(),
                    )
                })
                .collect();
            assert_eq!(
                names,
                [
                    ("@acme/plugin-x-backend", "0.1.0", None),
                    ("@backstage/config", "1.3.9", None),
                    (
                        "@backstage/plugin-catalog-backend",
                        "3.8.0",
                        Some("catalog")
                    ),
                ]
            );
            assert_eq!(inv.tables.len(), 2);
            assert_eq!(inv.backstage_json.unwrap().text, r#"{"version":"1.52.0"}"#);
        }
        assert!(local_inventory(&nm.join("left-pad")).is_err());
    }
}
