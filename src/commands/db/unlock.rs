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
use serde::Serialize;

use super::{Databases, DbCommandError};
use crate::commands::{Outcome, confirm};
use crate::db::lock::Release;
use crate::knex::model::{LockState, lock_table_name};
use crate::kube::Cluster;
use crate::model::pod::PodView;
use crate::options::OutputFormat;
use crate::render::{self, Style, cell};

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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct UnlockReport {
    kind: &'static str,
    plugin: String,
    database: String,
    schema: Option<String>,
    dry_run: bool,
    /// The locks that block migrations, in the order they are released.
    plan: Vec<LockEntry>,
    released: Vec<ReleasedLock>,
    /// Locks another session freed between the plan and their release: left alone.
    already_free: Vec<LockEntry>,
    /// Locks of the plan not released because the command stopped.
    not_released: Vec<LockEntry>,
    error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct LockEntry {
    table: String,
    lock_table: String,
    state: LockState,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReleasedLock {
    table: String,
    lock_table: String,
    /// The lock's state before it was released (read under the row lock).
    was: LockState,
}

fn lock_word(state: &LockState) -> String {
    super::status::lock_word(state)
}

fn plan_text(report: &UnlockReport) -> String {
    let count = report.plan.len();
    let mut out = format!(
        "Release {} of plugin {} ({}):\n",
        if count == 1 {
            "the migration lock".to_string()
        } else {
            format!("{count} migration locks")
        },
        cell(&report.plugin),
        cell(&report.database)
    );
    for entry in &report.plan {
        out.push_str(&format!(
            "  {} ({}, {})\n",
            cell(&entry.table),
            cell(&entry.lock_table),
            lock_word(&entry.state)
        ));
    }
    if report.dry_run {
        out.push_str("Dry run: nothing was changed.\n");
    }
    out
}

fn result_text(report: &UnlockReport) -> String {
    let plugin = cell(&report.plugin);
    let mut out = String::new();
    for r in &report.released {
        out.push_str(&format!(
            "Released the lock of {plugin} {} ({}, was {}).\n",
            cell(&r.table),
            cell(&r.lock_table),
            lock_word(&r.was)
        ));
    }
    for e in &report.already_free {
        out.push_str(&format!(
            "Left the lock of {plugin} {} alone: another session freed it first ({}, now {}).\n",
            cell(&e.table),
            cell(&e.lock_table),
            lock_word(&e.state)
        ));
    }
    for e in &report.not_released {
        out.push_str(&format!(
            "NOT released: the lock of {plugin} {} ({}, still {}).\n",
            cell(&e.table),
            cell(&e.lock_table),
            lock_word(&e.state)
        ));
    }
    out
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
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )));
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
    let text = matches!(style.format, OutputFormat::Table | OutputFormat::Wide);
    if planned.is_empty() {
        if text {
            render::emit(&match table {
                Some(table) => format!(
                    "The migration lock of plugin {} table {} is not held; nothing changed.\n",
                    cell(plugin),
                    cell(table)
                ),
                None => format!(
                    "No migration lock of plugin {} was held; nothing changed.\n",
                    cell(plugin)
                ),
            });
        } else {
            render::emit(&render::render_value(&report, style));
        }
        return Ok(Outcome::Ok);
    }
    if text {
        render::emit(&plan_text(&report));
    }
    if request.dry_run {
        if !text {
            render::emit(&render::render_value(&report, style));
        }
        return Ok(Outcome::Ok);
    }
    if !request.yes {
        let count = planned.len();
        confirm::confirm(format!(
            "Release {}?",
            if count == 1 {
                "the lock".to_string()
            } else {
                format!("{count} locks")
            }
        ))
        .await
        .map_err(|e| DbCommandError::Refused(e.0))?;
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
                result_text(&report)
            } else {
                render::render_value(&report, style)
            });
            Ok(Outcome::Ok)
        }
        // Nothing released yet: a failure like any other, nothing changed (exit 2).
        Some(e) if report.released.is_empty() => {
            if text && !report.already_free.is_empty() {
                render::emit(&result_text(&report));
            }
            Err(e.into())
        }
        Some(e) => {
            report.error = Some(e.to_string());
            render::emit(&if text {
                result_text(&report)
            } else {
                render::render_value(&report, style)
            });
            let names = |entries: &mut dyn Iterator<Item = &String>| {
                entries.map(String::as_str).collect::<Vec<_>>().join(", ")
            };
            render::error(&format!(
                "the unlock stopped part-way ({e}): released {}, not released {}",
                names(&mut report.released.iter().map(|r| &r.table)),
                names(&mut report.not_released.iter().map(|r| &r.table))
            ));
            Ok(Outcome::PartlyDone)
        }
    }
}
