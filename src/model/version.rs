//! The reports of `version` and `version --diff`, as data, and the pure work behind them: which image
//! each workload names and which digests its pods run, which Backstage release and packages a tree
//! holds, and what moving from one tree to another changes (package versions, migration files, and
//! the rollbacks a downgrade needs first). No I/O: the command gathers, this computes.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use super::flux::FluxReport;
use super::image::{ImageRef, TagKind, digest_of_image_id, parse_image, tag_kind};
use super::release::{Inference, ReleaseData, release_of_backstage_json};
use crate::knex::model::MigrationRow;
use crate::knex::packages::{MigrationTableSource, PluginDatabases, plugin_id_of_package};
use crate::knex::plan::table_plan;

/// `version --client` and `--version`: this binary's version, the git commit it was built from
/// (`unknown` when built outside git without `KUBECTL_BACKSTAGE_GIT_COMMIT`), the build date (UTC,
/// RFC 3339 full-date) and the target triple, as `build.rs` recorded them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientVersion {
    pub kind: &'static str,
    pub version: &'static str,
    pub git_commit: &'static str,
    pub build_date: &'static str,
    pub target: &'static str,
}

impl ClientVersion {
    /// The build information of this binary.
    pub const fn this_build() -> ClientVersion {
        ClientVersion {
            kind: "ClientVersion",
            version: env!("CARGO_PKG_VERSION"),
            git_commit: env!("KUBECTL_BACKSTAGE_GIT_COMMIT"),
            build_date: env!("KUBECTL_BACKSTAGE_BUILD_DATE"),
            target: env!("KUBECTL_BACKSTAGE_TARGET"),
        }
    }
}

/// What `--version` prints after the program's name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KUBECTL_BACKSTAGE_GIT_COMMIT"),
    ", built ",
    env!("KUBECTL_BACKSTAGE_BUILD_DATE"),
    ", ",
    env!("KUBECTL_BACKSTAGE_TARGET"),
    ")"
);

/// `version`: what runs in the namespace, and what the backend image is made of.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionReport {
    pub kind: &'static str,
    /// The namespace the workloads are in; `null` when the cluster was not read.
    pub namespace: Option<String>,
    pub workloads: Vec<WorkloadVersion>,
    /// `null` when the packages could not be read; `backstageError` says why.
    pub backstage: Option<BackstageVersion>,
    pub backstage_error: Option<String>,
    /// Who in Flux manages the namespace's Deployments; `null` when none carries Flux labels (or the
    /// cluster was not read).
    pub flux: Option<FluxReport>,
}

/// One container of a Deployment or StatefulSet.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadVersion {
    /// `deployment/NAME` or `statefulset/NAME`.
    pub workload: String,
    pub container: String,
    /// The image the workload's template names.
    pub image: String,
    #[serde(flatten)]
    pub reference: ImageRef,
    pub tag_kind: TagKind,
    /// What the workload's pods run, per image and digest, most pods first.
    pub running: Vec<RunningImage>,
}

/// Pods of a workload running one image at one digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningImage {
    /// The image as the pod's status reports it (during a rollout the old pods still run the old one).
    pub image: String,
    /// From the status's `imageID`; `null` while the container has not started.
    pub digest: Option<String>,
    pub pods: usize,
}

/// A tree's Backstage release and packages.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackstageVersion {
    /// `pod:NAME` or `dir:/path`.
    pub source: String,
    /// The release, when `backstage.json` names it or the package versions match one.
    pub release: Option<String>,
    /// `backstage.json` (with `backstageJson` its path) or `inferred` (with `inference`).
    pub release_from: Option<&'static str>,
    pub backstage_json: Option<String>,
    pub inference: Option<Inference>,
    pub packages: Vec<PackageVersion>,
}

/// One `@backstage/*` package, or another that ships migrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageVersion {
    pub package: String,
    pub version: String,
    /// `backstage.pluginId` of its `package.json`, else the id its name gives (for backend plugins
    /// and modules), else `null`.
    pub plugin_id: Option<String>,
    /// `package.json` or `name`.
    pub plugin_id_from: Option<&'static str>,
    pub role: Option<String>,
    /// Migration files it ships, over all its migration folders.
    pub migrations: usize,
    /// The first release that shipped this version of it, when the release data knows.
    pub first_release: Option<String>,
}

/// A package as its `package.json` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledPackage {
    pub package: String,
    pub version: String,
    /// `backstage.pluginId` of its `package.json`, when it declares one.
    #[serde(default)]
    pub plugin_id: Option<String>,
    /// `backstage.role` (`backend-plugin`, `backend-plugin-module`, `frontend-plugin`, …).
    #[serde(default)]
    pub role: Option<String>,
}

/// The parts of a tree `version` needs, as gathered (see `migrations::inventory`).
pub struct TreeContents<'a> {
    pub source: &'a str,
    pub backstage_json: Option<(&'a str, &'a str)>,
    pub installed: &'a [InstalledPackage],
    pub tables: &'a [MigrationTableSource],
}

/// The release and packages of a tree.
pub fn backstage_version(tree: &TreeContents<'_>, data: &ReleaseData) -> BackstageVersion {
    let from_json = tree
        .backstage_json
        .and_then(|(_, text)| release_of_backstage_json(text));
    let inference = if from_json.is_none() {
        data.infer(
            tree.installed
                .iter()
                .filter(|p| p.package.starts_with("@backstage/"))
                .map(|p| (p.package.as_str(), p.version.as_str())),
        )
    } else {
        None
    };
    let (release, release_from) = match (&from_json, &inference) {
        (Some(r), _) => (Some(r.clone()), Some("backstage.json")),
        (None, Some(i)) => (Some(i.release.clone()), Some("inferred")),
        (None, None) => (None, None),
    };
    let mut packages: Vec<PackageVersion> = tree
        .installed
        .iter()
        .map(|installed| {
            let InstalledPackage {
                package,
                version,
                plugin_id,
                role,
            } = installed;
            let (plugin_id, plugin_id_from) = match plugin_id {
                Some(id) => (Some(id.clone()), Some("package.json")),
                None => match plugin_id_of_package(package) {
                    Some(id) => (Some(id), Some("name")),
                    None => (None, None),
                },
            };
            PackageVersion {
                migrations: tree
                    .tables
                    .iter()
                    .filter(|t| &t.package == package)
                    .map(|t| t.files.len())
                    .sum(),
                first_release: data.first_release_of(package, version).map(str::to_string),
                package: package.clone(),
                version: version.clone(),
                plugin_id,
                plugin_id_from,
                role: role.clone(),
            }
        })
        .collect();
    packages.sort_by(|a, b| a.package.cmp(&b.package));
    BackstageVersion {
        source: tree.source.to_string(),
        release,
        release_from,
        backstage_json: from_json
            .is_some()
            .then(|| tree.backstage_json.map(|(path, _)| path.to_string()))
            .flatten(),
        inference,
        packages,
    }
}

/// The workload a pod belongs to: `deployment/NAME` through its ReplicaSet (whose name is the
/// Deployment's and the pod template hash), or `statefulset/NAME`.
fn workload_of(pod: &Pod) -> Option<String> {
    let owner = pod
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))?;
    match owner.kind.as_str() {
        "StatefulSet" => Some(format!("statefulset/{}", owner.name)),
        "ReplicaSet" => {
            let hash = pod.metadata.labels.as_ref()?.get("pod-template-hash")?;
            let deployment = owner.name.strip_suffix(&format!("-{hash}"))?;
            Some(format!("deployment/{deployment}"))
        }
        _ => None,
    }
}

/// One row per workload container, with what its pods run.
pub fn workload_versions(
    deployments: &[Deployment],
    statefulsets: &[StatefulSet],
    pods: &[Pod],
) -> Vec<WorkloadVersion> {
    let mut templates: Vec<(String, &k8s_openapi::api::core::v1::PodTemplateSpec)> = Vec::new();
    for d in deployments {
        if let Some(spec) = &d.spec {
            templates.push((
                format!("deployment/{}", d.metadata.name.clone().unwrap_or_default()),
                &spec.template,
            ));
        }
    }
    for s in statefulsets {
        if let Some(spec) = &s.spec {
            templates.push((
                format!(
                    "statefulset/{}",
                    s.metadata.name.clone().unwrap_or_default()
                ),
                &spec.template,
            ));
        }
    }
    templates.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rows = Vec::new();
    for (workload, template) in templates {
        let containers = template
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        for container in containers {
            let image = container.image.clone().unwrap_or_default();
            let mut running: BTreeMap<(String, Option<String>), usize> = BTreeMap::new();
            for pod in pods
                .iter()
                .filter(|p| workload_of(p).as_deref() == Some(workload.as_str()))
            {
                let statuses = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref());
                let Some(status) = statuses
                    .into_iter()
                    .flatten()
                    .find(|s| s.name == container.name)
                else {
                    continue;
                };
                *running
                    .entry((status.image.clone(), digest_of_image_id(&status.image_id)))
                    .or_default() += 1;
            }
            let mut running: Vec<RunningImage> = running
                .into_iter()
                .map(|((image, digest), pods)| RunningImage {
                    image,
                    digest,
                    pods,
                })
                .collect();
            running.sort_by_key(|r| std::cmp::Reverse(r.pods));
            let reference = parse_image(&image);
            rows.push(WorkloadVersion {
                workload: workload.clone(),
                container: container.name.clone(),
                tag_kind: tag_kind(&reference),
                reference,
                image,
                running,
            });
        }
    }
    rows
}

/// Orders two npm versions: numeric major.minor.patch, a pre-release before its release; `None`
/// when either is not a version.
pub fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    fn parse(v: &str) -> Option<(Vec<u64>, Option<&str>)> {
        let v = v.split('+').next()?;
        let (core, pre) = match v.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (v, None),
        };
        let numbers = core
            .split('.')
            .map(|n| n.parse().ok())
            .collect::<Option<Vec<u64>>>()?;
        Some((numbers, pre))
    }
    let (na, pa) = parse(a)?;
    let (nb, pb) = parse(b)?;
    Some(na.cmp(&nb).then_with(|| match (pa, pb) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.cmp(y),
    }))
}

/// `version --diff A B`: what moving from A to B changes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionDiff {
    pub kind: &'static str,
    pub from: DiffSide,
    pub to: DiffSide,
    /// Packages whose version differs, or that only one side has, by name.
    pub packages: Vec<PackageChange>,
    /// Packages at the same version on both sides.
    pub unchanged: usize,
    /// Migration tables whose files differ.
    pub migrations: Vec<MigrationChange>,
    /// Whether B lacks migration files A has: the databases must be rolled back first, with A's code.
    pub downgrade: bool,
    /// The commands that plan and do those rollbacks.
    pub commands: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffSide {
    pub source: String,
    pub release: Option<String>,
    pub release_from: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageChange {
    pub package: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `upgraded`, `downgraded`, `changed` (not comparable), `added` or `removed`.
    pub change: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationChange {
    /// The plugin whose database holds the table; `null` for a shared service's table that is in
    /// every plugin database that uses it (the scheduler's, the plugin keys').
    pub plugin: Option<String>,
    pub table: String,
    /// The package whose files these are (B's, else A's).
    pub package: String,
    /// In B and not in A, in file order: they run at start-up.
    pub added: Vec<String>,
    /// In A and not in B, most recent first: they must be rolled back before B starts.
    pub removed: Vec<String>,
    /// The `db rollback` commands for `removed`, for a database that is at A's files.
    pub commands: Vec<String>,
    /// B has no files for this table at all (the plugin or service is not in B): B never migrates it,
    /// so its database is left as it is and nothing needs rolling back.
    pub gone_in_to: bool,
}

/// The placeholder for the plugin in a shared table's commands: each plugin database that has it.
pub const EACH_PLUGIN: &str = "<each plugin with this table>";

/// One table's files on each side of a diff.
type TablePair<'a> = (
    Option<&'a MigrationTableSource>,
    Option<&'a MigrationTableSource>,
);

/// Compares two trees. `to_spec` is B as `db plan --to` takes it, when it can (`None` for another
/// environment's pod, which `db plan` cannot reach).
pub fn version_diff(
    from: &BackstageVersion,
    from_tables: &[MigrationTableSource],
    to: &BackstageVersion,
    to_tables: &[MigrationTableSource],
    to_spec: Option<&str>,
) -> VersionDiff {
    let a: BTreeMap<&str, &str> = from
        .packages
        .iter()
        .map(|p| (p.package.as_str(), p.version.as_str()))
        .collect();
    let b: BTreeMap<&str, &str> = to
        .packages
        .iter()
        .map(|p| (p.package.as_str(), p.version.as_str()))
        .collect();
    let names: BTreeSet<&str> = a.keys().chain(b.keys()).copied().collect();
    let mut packages = Vec::new();
    let mut unchanged = 0;
    for name in names {
        let (va, vb) = (a.get(name).copied(), b.get(name).copied());
        let change = match (va, vb) {
            (Some(x), Some(y)) if x == y => {
                unchanged += 1;
                continue;
            }
            (Some(x), Some(y)) => match compare_versions(x, y) {
                Some(Ordering::Less) => "upgraded",
                Some(Ordering::Greater) => "downgraded",
                _ => "changed",
            },
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (None, None) => continue,
        };
        packages.push(PackageChange {
            package: name.to_string(),
            from: va.map(str::to_string),
            to: vb.map(str::to_string),
            change,
        });
    }

    // Tables keyed by where they live; the first source folder for a key wins, as for `db status`.
    let key = |t: &MigrationTableSource| (t.databases.clone(), t.table.clone());
    let mut tables: BTreeMap<(String, String), TablePair<'_>> = BTreeMap::new();
    let sort_key = |t: &MigrationTableSource| {
        let (databases, table) = key(t);
        let plugin = match databases {
            PluginDatabases::Plugin(id) => id,
            PluginDatabases::AnyPlugin => String::new(),
        };
        (plugin, table)
    };
    for t in from_tables {
        tables.entry(sort_key(t)).or_default().0.get_or_insert(t);
    }
    for t in to_tables {
        tables.entry(sort_key(t)).or_default().1.get_or_insert(t);
    }
    let mut migrations = Vec::new();
    for ((plugin, table), (ta, tb)) in tables {
        let files_a: &[String] = ta.map_or(&[], |t| &t.files);
        let files_b: &[String] = tb.map_or(&[], |t| &t.files);
        if files_a == files_b {
            continue;
        }
        let plugin = (!plugin.is_empty()).then_some(plugin);
        // A database at A's files holds A's rows in file order: plan B against them.
        let rows: Vec<MigrationRow> = files_a
            .iter()
            .enumerate()
            .map(|(i, name)| MigrationRow {
                id: i as i32 + 1,
                name: name.clone(),
                batch: Some(1),
                migration_time: None,
            })
            .collect();
        let plan = table_plan(
            plugin.as_deref().unwrap_or(EACH_PLUGIN),
            &table,
            &rows,
            files_b,
        );
        if plan.upgrade.is_empty() && plan.rollback.is_empty() {
            continue;
        }
        let gone_in_to = tb.is_none();
        migrations.push(MigrationChange {
            gone_in_to,
            plugin,
            package: tb.or(ta).map(|t| t.package.clone()).unwrap_or_default(),
            table,
            added: plan.upgrade,
            removed: plan.rollback,
            commands: if gone_in_to {
                Vec::new()
            } else {
                plan.commands
            },
        });
    }
    let downgrade = migrations
        .iter()
        .any(|m| !m.removed.is_empty() && !m.gone_in_to);
    let mut commands = Vec::new();
    if downgrade {
        if let Some(spec) = to_spec {
            commands.push(format!("kubectl backstage db plan --to {spec}"));
        }
        for m in migrations.iter().filter(|m| !m.commands.is_empty()) {
            commands.extend(m.commands.iter().cloned());
        }
    }
    VersionDiff {
        kind: "VersionDiff",
        from: DiffSide {
            source: from.source.clone(),
            release: from.release.clone(),
            release_from: from.release_from,
        },
        to: DiffSide {
            source: to.source.clone(),
            release: to.release.clone(),
            release_from: to.release_from,
        },
        packages,
        unchanged,
        migrations,
        downgrade,
        commands,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn pods_are_counted_per_running_image_and_digest_under_their_workload() {
        let deployment: Deployment = serde_norway::from_str(
            "metadata: {name: backstage}\nspec: {selector: {}, template: {spec: {containers: [{name: backstage, image: 'r.io/b/backstage:prod-5f3c2a1-20261122110000'}]}}}\n",
        )
        .unwrap();
        let statefulset: StatefulSet = serde_norway::from_str(
            "metadata: {name: db}\nspec: {serviceName: db, selector: {}, template: {spec: {containers: [{name: postgresql, image: 'docker.io/bitnami/postgresql:16.4.0'}]}}}\n",
        )
        .unwrap();
        let of_rs = |name: &str, rs: &str, hash: &str, image: &str, id: &str| {
            pod(&format!(
                "metadata: {{name: {name}, labels: {{pod-template-hash: '{hash}'}}, ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: {rs}, uid: u, controller: true}}]}}\nstatus: {{containerStatuses: [{{name: backstage, image: '{image}', imageID: '{id}', ready: true, restartCount: 0}}]}}\n"
            ))
        };
        let new = "r.io/b/backstage:prod-5f3c2a1-20261122110000";
        let old = "r.io/b/backstage:prod-1a2b3c4-20261101090000";
        let pods = vec![
            of_rs(
                "b-1",
                "backstage-7d9f6b5c8",
                "7d9f6b5c8",
                new,
                "r.io/b/backstage@sha256:aa",
            ),
            of_rs(
                "b-2",
                "backstage-6c9f8d7b54",
                "6c9f8d7b54",
                old,
                "r.io/b/backstage@sha256:bb",
            ),
            of_rs(
                "b-3",
                "backstage-6c9f8d7b54",
                "6c9f8d7b54",
                old,
                "r.io/b/backstage@sha256:bb",
            ),
            of_rs("b-4", "backstage-7d9f6b5c8", "7d9f6b5c8", new, ""),
            // Another Deployment whose name starts the same way.
            of_rs(
                "w-1",
                "backstage-worker-59c8d7f6b",
                "59c8d7f6b",
                new,
                "r.io/b/backstage@sha256:cc",
            ),
        ];
        let rows = workload_versions(&[deployment], &[statefulset], &pods);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].workload, "deployment/backstage");
        assert_eq!(rows[0].tag_kind.label(), "prod");
        assert_eq!(
            rows[0].running,
            vec![
                RunningImage {
                    image: old.into(),
                    digest: Some("sha256:bb".into()),
                    pods: 2
                },
                RunningImage {
                    image: new.into(),
                    digest: None,
                    pods: 1
                },
                RunningImage {
                    image: new.into(),
                    digest: Some("sha256:aa".into()),
                    pods: 1
                },
            ]
        );
        assert_eq!(rows[1].workload, "statefulset/db");
        assert!(rows[1].running.is_empty());
    }

    #[test]
    fn versions_order_numerically_with_prereleases_first() {
        assert_eq!(compare_versions("0.9.0", "0.10.0"), Some(Ordering::Less));
        assert_eq!(compare_versions("4.0.0", "3.8.1"), Some(Ordering::Greater));
        assert_eq!(
            compare_versions("1.0.0-next.1", "1.0.0"),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare_versions("1.0.0", "1.0.0+build"),
            Some(Ordering::Equal)
        );
        assert_eq!(compare_versions("workspace:^", "1.0.0"), None);
    }

    fn side(source: &str, packages: &[(&str, &str)]) -> BackstageVersion {
        BackstageVersion {
            source: source.into(),
            release: None,
            release_from: None,
            backstage_json: None,
            inference: None,
            packages: packages
                .iter()
                .map(|(p, v)| PackageVersion {
                    package: p.to_string(),
                    version: v.to_string(),
                    plugin_id: None,
                    plugin_id_from: None,
                    role: None,
                    migrations: 0,
                    first_release: None,
                })
                .collect(),
        }
    }

    fn table(
        plugin: Option<&str>,
        table: &str,
        package: &str,
        files: &[&str],
    ) -> MigrationTableSource {
        MigrationTableSource {
            databases: plugin.map_or(PluginDatabases::AnyPlugin, |p| {
                PluginDatabases::Plugin(p.into())
            }),
            table: table.into(),
            package: package.into(),
            version: "1".into(),
            folder: "migrations".into(),
            files: files.iter().map(|s| s.to_string()).collect(),
            directory: String::new(),
        }
    }

    #[test]
    fn a_downgrade_names_the_rollbacks_and_an_upgrade_the_new_files() {
        let a = side(
            "dir:/a",
            &[
                ("@backstage/x", "2.0.0"),
                ("@backstage/gone", "1.0.0"),
                ("@backstage/same", "1.0.0"),
            ],
        );
        let b = side(
            "dir:/b",
            &[
                ("@backstage/x", "1.9.0"),
                ("@backstage/new", "0.1.0"),
                ("@backstage/same", "1.0.0"),
            ],
        );
        let ta = [
            table(
                Some("catalog"),
                "knex_migrations",
                "@backstage/x",
                &["1_a.js", "2_b.js", "3_c.js"],
            ),
            table(
                None,
                "backstage_backend_tasks__knex_migrations",
                "@backstage/d",
                &["1_s.js"],
            ),
        ];
        let tb = [
            table(
                Some("catalog"),
                "knex_migrations",
                "@backstage/x",
                &["1_a.js"],
            ),
            table(
                None,
                "backstage_backend_tasks__knex_migrations",
                "@backstage/d",
                &["1_s.js", "2_t.js"],
            ),
        ];
        let diff = version_diff(&a, &ta, &b, &tb, Some("/b"));
        let changes: Vec<(&str, &str)> = diff
            .packages
            .iter()
            .map(|p| (p.package.as_str(), p.change))
            .collect();
        assert_eq!(
            changes,
            [
                ("@backstage/gone", "removed"),
                ("@backstage/new", "added"),
                ("@backstage/x", "downgraded")
            ]
        );
        assert_eq!(diff.unchanged, 1);
        assert_eq!(
            diff.migrations,
            vec![
                MigrationChange {
                    plugin: None,
                    table: "backstage_backend_tasks__knex_migrations".into(),
                    package: "@backstage/d".into(),
                    added: vec!["2_t.js".into()],
                    removed: vec![],
                    commands: vec![],
                    gone_in_to: false,
                },
                MigrationChange {
                    plugin: Some("catalog".into()),
                    table: "knex_migrations".into(),
                    package: "@backstage/x".into(),
                    added: vec![],
                    removed: vec!["3_c.js".into(), "2_b.js".into()],
                    commands: vec![
                        "kubectl backstage db rollback --plugin catalog --to 1_a.js".into()
                    ],
                    gone_in_to: false,
                },
            ]
        );
        assert!(diff.downgrade);
        assert_eq!(
            diff.commands,
            [
                "kubectl backstage db plan --to /b",
                "kubectl backstage db rollback --plugin catalog --to 1_a.js"
            ]
        );
        let back = version_diff(&b, &tb, &a, &ta, None);
        assert_eq!(back.migrations[0].removed, ["2_t.js"]);
        assert_eq!(
            back.commands,
            [format!(
                "kubectl backstage db rollback --plugin {EACH_PLUGIN} --table backstage_backend_tasks__knex_migrations --to 1_s.js"
            )]
        );
        // A plugin B does not have at all: its files are listed, but nothing is rolled back.
        let with_demo = [
            ta[0].clone(),
            table(
                Some("demo"),
                "knex_migrations",
                "@acme/plugin-demo-backend",
                &["1_d.js"],
            ),
        ];
        let gone = version_diff(&a, &with_demo, &a, &ta[..1], Some("/a"));
        assert_eq!(gone.migrations.len(), 1);
        assert_eq!(
            (
                gone.migrations[0].removed.as_slice(),
                gone.migrations[0].gone_in_to
            ),
            (&["1_d.js".to_string()][..], true)
        );
        assert!(
            gone.migrations[0].commands.is_empty() && gone.commands.is_empty() && !gone.downgrade
        );
        let same = version_diff(&a, &ta, &a, &ta, None);
        assert!(same.packages.is_empty() && same.migrations.is_empty() && !same.downgrade);
    }
}
