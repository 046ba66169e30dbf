//! Migration files of the running image: a small Node script, run with `node -e` in a Backstage
//! container over pod exec (no shell needed), lists every package under `node_modules` that ships
//! migrations, with its version and file names, as JSON.

use serde::Deserialize;

use crate::knex::packages::{
    KNOWN_MIGRATION_FOLDERS, MigrationTableSource, PackageMigrations, migration_table_source,
};
use crate::kube::{Cluster, KubeError};
use crate::migrations::inventory::{BackstageJson, InstalledPackage, Inventory};
use crate::model::pod::PodView;

/// The listing script. `__FOLDERS__` becomes a JSON map of package → folders that are not
/// `migrations`. It looks in the working directory's `node_modules` (Backstage images use `/app`),
/// then in `/app/node_modules`.
const LIST_SCRIPT: &str = r#"
const fs = require('fs'), path = require('path');
const special = __FOLDERS__;
const isDir = (p) => { try { return fs.statSync(p).isDirectory(); } catch (e) { return false; } };
const roots = [path.join(process.cwd(), 'node_modules'), '/app/node_modules'].filter(isDir);
const root = roots[0];
const packages = [], installed = [];
if (root) {
  const dirs = [];
  for (const entry of fs.readdirSync(root)) {
    const p = path.join(root, entry);
    if (entry.startsWith('@') && isDir(p)) for (const s of fs.readdirSync(p)) dirs.push(path.join(p, s));
    else if (!entry.startsWith('.')) dirs.push(p);
  }
  for (const dir of dirs.sort()) {
    let manifest;
    try { manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')); } catch (e) { continue; }
    if (!manifest || typeof manifest.name !== 'string') continue;
    let shipsMigrations = false;
    for (const folder of special[manifest.name] || ['migrations']) {
      const where = path.join(dir, folder);
      if (!isDir(where)) continue;
      const listing = fs.readdirSync(where).filter((f) => { try { return fs.statSync(path.join(where, f)).isFile(); } catch (e) { return false; } });
      packages.push({ package: manifest.name, version: String(manifest.version || ''), folder, directory: where, listing });
      shipsMigrations = true;
    }
    if (shipsMigrations || manifest.name.startsWith('@backstage/')) {
      const meta = manifest.backstage && typeof manifest.backstage === 'object' ? manifest.backstage : {};
      installed.push({ package: manifest.name, version: String(manifest.version || ''),
        pluginId: typeof meta.pluginId === 'string' ? meta.pluginId : null, role: typeof meta.role === 'string' ? meta.role : null });
    }
  }
}
// backstage.json names the release: at the app root (the working directory, the folder holding
// node_modules, or their parent).
let backstageJson = null;
const places = [process.cwd(), root ? path.dirname(root) : null, path.dirname(process.cwd()), '/app'].filter(Boolean);
for (const place of [...new Set(places)]) {
  const file = path.join(place, 'backstage.json');
  try { backstageJson = { path: file, text: fs.readFileSync(file, 'utf8').slice(0, 4096) }; break; } catch (e) { /* next */ }
}
process.stdout.write(JSON.stringify({ cwd: process.cwd(), root: root || null, node: process.version, packages, installed, backstageJson }));
"#;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    cwd: String,
    root: Option<String>,
    packages: Vec<ListedPackage>,
    #[serde(default)]
    installed: Vec<InstalledPackage>,
    #[serde(default)]
    backstage_json: Option<BackstageJson>,
}

#[derive(Debug, Deserialize)]
struct ListedPackage {
    package: String,
    version: String,
    folder: String,
    directory: String,
    listing: Vec<String>,
}

/// The migration files found in a pod.
#[derive(Debug)]
pub struct PodFiles {
    pub pod: String,
    pub container: String,
    /// The container's working directory, where its `node_modules` (and knex) are.
    pub cwd: String,
    pub tables: Vec<MigrationTableSource>,
}

#[derive(Debug, thiserror::Error)]
pub enum PodSourceError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(
        "no running, ready Backstage pod in namespace {namespace} to read migration files from; name one with --pod, or use --source DIR"
    )]
    NoPod { namespace: String },
    #[error("pod {pod:?} not found in namespace {namespace}")]
    PodNotFound { pod: String, namespace: String },
    #[error(
        "cannot exec into pod {pod}: container {container} is {state} (a crash-looping container cannot run commands); pick a running pod with --pod NAME, or use --source DIR"
    )]
    NotRunning {
        pod: String,
        container: String,
        state: String,
    },
    #[error("listing the migration files in pod {pod} failed: {message}")]
    Listing { pod: String, message: String },
}

fn folders_json() -> String {
    let mut map = serde_json::Map::new();
    for known in KNOWN_MIGRATION_FOLDERS {
        let entry = map
            .entry(known.package.to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(list) = entry {
            list.push(serde_json::Value::String(known.folder.to_string()));
        }
    }
    serde_json::Value::Object(map).to_string()
}

/// The script, ready for `node -e`.
pub fn list_script() -> String {
    LIST_SCRIPT.replace("__FOLDERS__", &folders_json())
}

/// Picks the pod and container to read files from (or run Knex in): the named pod, else the newest
/// running and ready pod that is not part of a StatefulSet, preferring `app.kubernetes.io/name=backstage`.
pub async fn choose_pod(
    cluster: &Cluster,
    named: Option<&str>,
) -> Result<(String, String), PodSourceError> {
    use k8s_openapi::api::core::v1::Pod;
    let (pods, _) = cluster.list_all::<Pod>("pods", None).await?;
    let pick = |pod: &Pod| -> (String, String) {
        let view = PodView::from_pod(pod);
        let container = view
            .containers
            .iter()
            .find(|c| c.image.contains("backstage"))
            .or(view.containers.first())
            .map(|c| c.name.clone())
            .unwrap_or_default();
        (view.name, container)
    };
    if let Some(name) = named {
        let pod = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .ok_or_else(|| PodSourceError::PodNotFound {
                pod: name.to_string(),
                namespace: cluster.namespace.clone(),
            })?;
        let (pod_name, container) = pick(pod);
        let view = PodView::from_pod(pod);
        if let Some(c) = view.containers.iter().find(|c| c.name == container)
            && c.state != "running"
        {
            return Err(PodSourceError::NotRunning {
                pod: pod_name,
                container,
                state: c.reason.clone().unwrap_or_else(|| c.state.clone()),
            });
        }
        return Ok((pod_name, container));
    }
    let mut candidates: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            // Another run's preflight pod only waits: it is not the running Backstage.
            let preflight = p.metadata.labels.as_ref().is_some_and(|l| {
                l.get(super::image::ROLE_LABEL).map(String::as_str) == Some(super::image::ROLE)
                    && l.get(super::image::MANAGED_BY_LABEL).map(String::as_str)
                        == Some(super::image::MANAGED_BY)
            });
            if preflight {
                return false;
            }
            let v = PodView::from_pod(p);
            v.is_ready()
                && v.phase == "Running"
                && !v.terminating
                && !v
                    .owner
                    .as_deref()
                    .is_some_and(|o| o.starts_with("StatefulSet/"))
        })
        .collect();
    let labelled = |p: &&Pod| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/name"))
            .map(String::as_str)
            == Some("backstage")
    };
    candidates.sort_by_key(|p| {
        (
            !labelled(p),
            std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            p.metadata.name.clone(),
        )
    });
    candidates
        .first()
        .map(|p| pick(p))
        .ok_or_else(|| PodSourceError::NoPod {
            namespace: cluster.namespace.clone(),
        })
}

/// Lists the migration files in the pod's image.
pub async fn pod_files(cluster: &Cluster, named: Option<&str>) -> Result<PodFiles, PodSourceError> {
    let (files, _) = pod_listing(cluster, named).await?;
    Ok(files)
}

/// The packages of the pod's image (every `@backstage/*` one and every one that ships migrations), its
/// `backstage.json`, and its migration files: one exec.
pub async fn pod_inventory(
    cluster: &Cluster,
    named: Option<&str>,
) -> Result<Inventory, PodSourceError> {
    let (files, (installed, backstage_json)) = pod_listing(cluster, named).await?;
    Ok(Inventory {
        source: format!("pod:{}", files.pod),
        installed,
        tables: files.tables,
        backstage_json,
    })
}

pub(crate) type Extra = (Vec<InstalledPackage>, Option<BackstageJson>);

async fn pod_listing(
    cluster: &Cluster,
    named: Option<&str>,
) -> Result<(PodFiles, Extra), PodSourceError> {
    let (pod, container) = choose_pod(cluster, named).await?;
    listing_in(cluster, pod, container).await
}

/// Runs the listing script in one container (one exec): its migration files, packages and
/// `backstage.json`.
pub(crate) async fn listing_in(
    cluster: &Cluster,
    pod: String,
    container: String,
) -> Result<(PodFiles, Extra), PodSourceError> {
    let command = vec!["node".to_string(), "-e".to_string(), list_script()];
    let output = cluster
        .exec(&pod, Some(&container), &command, None)
        .await
        .map_err(|e| match e {
            KubeError::Api {
                code: 400, message, ..
            } if message.contains("container not found") || message.contains("not running") => {
                PodSourceError::NotRunning {
                    pod: pod.clone(),
                    container: container.clone(),
                    state: "not running".into(),
                }
            }
            other => PodSourceError::Kube(other),
        })?;
    if output.exit_code != Some(0) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .to_string();
        return Err(PodSourceError::Listing {
            pod,
            message: format!(
                "node exited {}: {message}",
                output.exit_code.map_or("?".into(), |c| c.to_string())
            ),
        });
    }
    let listing: Listing =
        serde_json::from_slice(&output.stdout).map_err(|e| PodSourceError::Listing {
            pod: pod.clone(),
            message: format!("unexpected output: {e}"),
        })?;
    if listing.root.is_none() {
        return Err(PodSourceError::Listing {
            pod,
            message: format!("no node_modules in {} or /app", listing.cwd),
        });
    }
    let tables = listing
        .packages
        .into_iter()
        .filter_map(|p| {
            migration_table_source(&PackageMigrations {
                package: p.package,
                version: p.version,
                folder: p.folder,
                listing: p.listing,
                directory: p.directory,
            })
        })
        .collect();
    Ok((
        PodFiles {
            pod,
            container,
            cwd: listing.cwd,
            tables,
        },
        (listing.installed, listing.backstage_json),
    ))
}
