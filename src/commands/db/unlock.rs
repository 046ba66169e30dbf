//! `db unlock`: release a Knex migration lock, as `knex migrate:unlock` does — but not while a backend
//! pod is starting, because that pod may be migrating and hold the lock for real.
//!
//! Like `db rollback` it is slow on purpose: it reads the locks, prints the plan, asks (`--yes` skips
//! the question, `--dry-run` only prints, no terminal and no `--yes` refuses), then releases each lock
//! in one transaction that re-reads it under a row lock ([`crate::db::lock`]): a lock another session
//! freed meanwhile is left alone. A release that fails after another succeeded exits 3 with a report
//! of what was and was not released; a failure before any change exits 2.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::{Databases, DbCommandError};
use crate::commands::{Outcome, confirm};
use crate::db::lock::Release;
use crate::knex::model::{LockState, lock_table_name};
use crate::kube::Cluster;
use crate::model::db::{LockEntry, ReleasedLock, UnlockReport};
use crate::model::pod::PodView;
use crate::render::{self, Style};

/// What the operator asked for.
pub struct UnlockRequest<'a> {
    pub plugin: &'a str,
    /// Only this migration table's lock.
    pub table: Option<&'a str>,
    /// Skip the check for starting backend pods.
    pub force: bool,
    pub dry_run: bool,
    pub yes: bool,
    /// How long a release waits for another session that holds the lock rows (`--request-timeout`;
    /// `None` waits as long as it takes).
    pub lock_wait: Option<Duration>,
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
    request: &UnlockRequest<'_>,
    cluster: Result<Cluster, crate::kube::KubeError>,
    style: &Style,
) -> Result<Outcome, DbCommandError> {
    let (plugin, table) = (request.plugin, request.table);
    if !request.force {
        let cluster = cluster.map_err(|cause| DbCommandError::CannotCheckPods { cause })?;
        let starting = starting_pods(&cluster).await?;
        if !starting.is_empty() {
            return Err(DbCommandError::UnlockWhilePodStarting {
                pods: starting,
                namespace: cluster.namespace.clone(),
            });
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
        return Err(DbCommandError::NoMigrationTable {
            plugin: plugin.to_string(),
            table: want.to_string(),
            database: None,
            known: Some(tables.iter().map(|t| t.table.clone()).collect()),
        });
    }

    // The plan: every lock that blocks migrations (read without a row lock; re-read at release).
    let mut planned = Vec::new();
    for t in tables
        .iter()
        .filter(|t| table.is_none_or(|want| t.table == want))
    {
        let contents = connection.table_contents(t).await?;
        let state = LockState::from_rows(contents.lock.as_deref());
        if state.blocks_migrations() {
            planned.push((t.clone(), state));
        }
    }
    let mut report = UnlockReport {
        kind: "DbUnlock",
        plugin: target.plugin.clone(),
        database: target.database.clone(),
        schema: target.schema.clone(),
        dry_run: request.dry_run,
        plan: planned
            .iter()
            .map(|(t, state)| LockEntry {
                table: t.table.clone(),
                lock_table: lock_table_name(&t.table),
                state: *state,
            })
            .collect(),
        released: Vec::new(),
        already_free: Vec::new(),
        not_released: Vec::new(),
        error: None,
    };
    let text = style.is_text();
    if planned.is_empty() {
        render::emit(&if text {
            render::db::nothing_to_unlock(plugin, table)
        } else {
            render::render_value(&report, style)
        });
        return Ok(Outcome::Ok);
    }
    if text {
        render::emit(&render::db::unlock_plan(&report));
    }
    if request.dry_run {
        if !text {
            render::emit(&render::render_value(&report, style));
        }
        return Ok(Outcome::Ok);
    }
    if !request.yes {
        confirm::confirm(render::db::unlock_question(&report)).await?;
    }

    let mut failure = None;
    for (i, (t, _)) in planned.iter().enumerate() {
        match connection.release_lock_if_held(t, request.lock_wait).await {
            Ok(Release::Released { was }) => report.released.push(ReleasedLock {
                table: t.table.clone(),
                lock_table: lock_table_name(&t.table),
                was,
            }),
            Ok(Release::AlreadyFree { now }) => report.already_free.push(LockEntry {
                table: t.table.clone(),
                lock_table: lock_table_name(&t.table),
                state: now,
            }),
            Err(e) => {
                report.not_released = report.plan[i..].to_vec();
                failure = Some(e);
                break;
            }
        }
    }
    match failure {
        None => {
            render::emit(&if text {
                render::db::unlock_done(&report)
            } else {
                render::render_value(&report, style)
            });
            Ok(Outcome::Ok)
        }
        // Nothing released yet: a failure like any other, nothing changed (exit 2).
        Some(e) if report.released.is_empty() => {
            if text && !report.already_free.is_empty() {
                render::emit(&render::db::unlock_done(&report));
            }
            Err(e.into())
        }
        Some(e) => {
            report.error = Some(e.to_string());
            render::emit(&if text {
                render::db::unlock_done(&report)
            } else {
                render::render_value(&report, style)
            });
            render::error(&render::db::unlock_stopped(&report, &e.to_string()));
            Ok(Outcome::PartlyDone)
        }
    }
}
