//! `db unlock`: release a Knex migration lock, as `knex migrate:unlock` does — but not while a backend
//! pod is starting, because that pod may be migrating and hold the lock for real.

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use super::{Databases, DbCommandError};
use crate::commands::Outcome;
use crate::knex::model::LockState;
use crate::kube::Cluster;
use crate::model::pod::PodView;
use crate::render::{self, Report, Style};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct UnlockReport {
    kind: &'static str,
    plugin: String,
    database: String,
    released: Vec<ReleasedLock>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReleasedLock {
    table: String,
    lock_table: String,
    /// The lock's state before it was released.
    was: LockState,
}

impl Report for UnlockReport {
    fn text(&self, _style: &Style) -> String {
        if self.released.is_empty() {
            return format!(
                "No migration lock of plugin {} was held; nothing changed.\n",
                self.plugin
            );
        }
        self.released
            .iter()
            .map(|r| {
                format!(
                    "Released the lock of {} {} ({}, was {}).\n",
                    self.plugin,
                    r.table,
                    r.lock_table,
                    super::status::lock_word(&r.was)
                )
            })
            .collect()
    }
}

/// Pods of the namespace that are starting (StatefulSets such as an in-cluster PostgreSQL excluded).
pub async fn starting_pods(cluster: &Cluster) -> Result<Vec<String>, crate::kube::KubeError> {
    let (pods, _) = cluster.list_all::<Pod>("pods", None).await?;
    Ok(pods
        .iter()
        .map(PodView::from_pod)
        .filter(|p| {
            p.is_starting()
                && !p
                    .owner
                    .as_deref()
                    .is_some_and(|o| o.starts_with("StatefulSet/"))
        })
        .map(|p| p.name)
        .collect())
}

pub async fn run(
    databases: &Databases,
    plugin: &str,
    table: Option<&str>,
    cluster: Result<Cluster, crate::kube::KubeError>,
    force: bool,
    style: &Style,
) -> Result<Outcome, DbCommandError> {
    if !force {
        let cluster = cluster.map_err(|e| DbCommandError::Refused(format!("cannot check whether a backend pod is starting ({e}); pass --force if no pod is migrating")))?;
        let starting = starting_pods(&cluster).await?;
        if !starting.is_empty() {
            return Err(DbCommandError::Refused(format!(
                "refusing to unlock: pod {} in namespace {} is starting and may hold the lock for real; wait with `kubectl backstage health --wait`, or pass --force",
                starting.join(", "),
                cluster.namespace
            )));
        }
    }
    let target = databases.selected(&[plugin.to_string()]).await?.remove(0);
    let mut connection = databases.connect(&target.database, false).await?;
    let tables = connection
        .migration_tables(target.schema.as_deref())
        .await?;
    if let Some(want) = table
        && !tables.iter().any(|t| t.table == want)
    {
        let known: Vec<&str> = tables.iter().map(|t| t.table.as_str()).collect();
        return Err(DbCommandError::Refused(format!(
            "plugin {plugin:?} has no migration table {want:?}; tables: {}",
            known.join(", ")
        )));
    }
    let mut released = Vec::new();
    for t in tables
        .iter()
        .filter(|t| table.is_none_or(|want| t.table == want))
    {
        let contents = connection.table_contents(t).await?;
        let state = LockState::from_rows(contents.lock.as_deref());
        if !state.blocks_migrations() {
            continue;
        }
        connection.release_lock(t).await?;
        released.push(ReleasedLock {
            table: t.table.clone(),
            lock_table: crate::knex::model::lock_table_name(&t.table),
            was: state,
        });
    }
    let report = UnlockReport {
        kind: "DbUnlock",
        plugin: target.plugin,
        database: target.database,
        released,
    };
    render::emit(&render::render(&report, style));
    Ok(Outcome::Ok)
}
