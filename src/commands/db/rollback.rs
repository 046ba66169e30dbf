//! `db rollback`: undo completed migrations with Knex itself, from the newer code (the files that
//! applied them). Slow on purpose: checks in a fixed order, a printed plan, a question, and a report of
//! exactly what was and was not undone.
//!
//! Check order, each refusing with exit 2 and nothing changed: the migration table exists; its lock
//! is free; the named migration is completed; the runner's source has the files of every completed
//! migration (Knex validates the whole list); no backend pod is starting.
//!
//! Knex does not undo a batch atomically: when it stops after undoing some migrations, the report
//! (read back from the database) says what was and was not undone, and the exit code is 3.

use super::unlock::starting_pods;
use super::{Databases, DbCommandError};
use crate::commands::{Outcome, confirm};
use crate::db::lock::DEFAULT_LOCK_WAIT;
use crate::knex::model::{
    LockState, RollbackError, RollbackTarget, completed_migration_name, rollback_plan,
};
use crate::kube::{Cluster, KubeError};
use crate::migrations::runner::{self, KnexConnection, KnexUndo};
use crate::migrations::source::{self, SourcePlace, SourceSpec};
use crate::model::db::{DatabaseStatus, DbStatusReport, KnexPlace, RollbackReport, TableStatus};
use crate::render::{self, Style};

/// What the operator asked for.
pub struct RollbackRequest<'a> {
    pub plugin: &'a str,
    pub table: &'a str,
    pub target: RollbackTarget,
    pub runner: SourceSpec,
    pub dry_run: bool,
    pub yes: bool,
}

pub async fn run(
    databases: &Databases,
    request: &RollbackRequest<'_>,
    cluster: Result<Cluster, KubeError>,
    style: &Style,
) -> Result<Outcome, DbCommandError> {
    let (plugin, table) = (request.plugin, request.table);
    let target = databases.selected(&[plugin.to_string()]).await?.remove(0);
    let connection = databases.connect(&target.database, true).await?;
    let tables = connection
        .migration_tables(target.schema.as_deref())
        .await?;
    let table_ref = tables
        .iter()
        .find(|t| t.table == table)
        .cloned()
        .ok_or_else(|| DbCommandError::NoMigrationTable {
            plugin: plugin.to_string(),
            table: table.to_string(),
            database: Some(target.database.clone()),
            known: Some(tables.iter().map(|t| t.table.clone()).collect()),
        })?;
    let before = connection.table_contents(&table_ref).await?;

    // 1. The lock.
    let lock = LockState::from_rows(before.lock.as_deref());
    if lock.blocks_migrations() {
        return Err(DbCommandError::LockHeld {
            plugin: plugin.to_string(),
            table: table.to_string(),
        });
    }
    // 2. The named migration is completed (`.js` may be left off).
    let knex_target = match &request.target {
        RollbackTarget::Down(Some(name)) | RollbackTarget::To(name) => {
            let full = completed_migration_name(&before.rows, name)
                .ok_or_else(|| DbCommandError::NotCompleted {
                    migration: name.clone(),
                    plugin: plugin.to_string(),
                    database: target.database.clone(),
                    table: table.to_string(),
                })?
                .to_string();
            match request.target {
                RollbackTarget::To(_) => RollbackTarget::To(full),
                _ => RollbackTarget::Down(Some(full)),
            }
        }
        other => other.clone(),
    };
    // 3. The runner's files.
    let (cluster, cluster_error) = match cluster {
        Ok(cluster) => (Some(cluster), None),
        Err(e) => (None, Some(e)),
    };
    let runner_source = match (&request.runner, cluster_error) {
        (SourceSpec::Pod(_), Some(cause)) => {
            return Err(DbCommandError::RunnerNeedsCluster { cause });
        }
        _ => {
            source::load(
                &request.runner,
                cluster.as_ref().ok_or(&KubeError::NoKubeconfig),
                &[],
                None,
                &render::preflight_progress,
            )
            .await?
        }
    };
    let files = source::files_for(&runner_source.tables, plugin, table).ok_or_else(|| {
        DbCommandError::NoRunnerFiles {
            runner: runner_source.name.clone(),
            plugin: plugin.to_string(),
            table: table.to_string(),
        }
    })?;
    let plan = rollback_plan(&files.files, &before.rows, &knex_target).map_err(|e| match e {
        RollbackError::DirectoryCorrupt { .. } => DbCommandError::FilesMissing {
            runner: runner_source.name.clone(),
            cause: e,
        },
        other => DbCommandError::RollbackPlan(other),
    })?;
    // 4. No backend pod starting (it may be migrating with the older code right now).
    match &cluster {
        Some(cluster) => {
            let starting = starting_pods(cluster).await?;
            if !starting.is_empty() {
                return Err(DbCommandError::RollbackWhilePodStarting {
                    pods: starting,
                    namespace: cluster.namespace.clone(),
                });
            }
        }
        None => render::warning(
            "no cluster to check for starting pods; make sure no Backstage pod is starting",
        ),
    }

    let names: Vec<String> = plan.names().into_iter().map(str::to_string).collect();
    let mut report = RollbackReport {
        kind: "DbRollback",
        plugin: plugin.to_string(),
        database: target.database.clone(),
        schema: target.schema.clone(),
        table: table.to_string(),
        runner: runner_source.name.clone(),
        knex_place: knex_place(&runner_source.place),
        dry_run: request.dry_run,
        plan: names.clone(),
        undone: Vec::new(),
        not_undone: Vec::new(),
        error: None,
        lock_released: true,
        status: None,
    };
    let text = style.is_text();
    if names.is_empty() {
        render::emit(&if text {
            render::db::nothing_to_roll_back(&report)
        } else {
            render::render_value(&report, style)
        });
        return Ok(Outcome::Ok);
    }
    if text {
        render::emit(&render::db::rollback_plan(&report));
    }
    if request.dry_run {
        if !text {
            render::emit(&render::render_value(&report, style));
        }
        return Ok(Outcome::Ok);
    }
    if !request.yes {
        confirm::confirm(render::db::rollback_question(&report)).await?;
    }

    // Run Knex where the newer files are.
    let ca_pem =
        match &databases.settings.sslrootcert {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|cause| {
                DbCommandError::SslRootCert {
                    path: path.clone(),
                    cause,
                }
            })?),
            None => None,
        };
    let settings = &databases.settings;
    let knex_connection = KnexConnection {
        host: &settings.host,
        port: settings.port,
        user: &settings.user,
        password: databases.password(),
        password_env: settings.password.env_var.as_deref(),
        database: &target.database,
        sslmode: settings.sslmode,
        ca_pem,
        search_path: target.schema.as_deref(),
    };
    let undo = match &knex_target {
        RollbackTarget::LastBatch => KnexUndo::Rollback,
        _ => KnexUndo::Down(names.clone()),
    };
    // A runner that fails (an exec stream cut, say) may have undone some migrations already: the
    // database is read back either way.
    let run = runner::run(
        &runner_source.place,
        cluster.as_ref(),
        &knex_connection,
        &files.directory,
        table,
        &undo,
    )
    .await;
    let (run_error, runner_failure) = match run {
        Ok(run) => {
            tracing::info!(stderr = %run.stderr.trim(), "knex runner finished");
            (run.error, None)
        }
        Err(e) => (Some(e.to_string()), Some(e)),
    };

    // What the database says now is the truth about what was undone.
    let mut connection = databases.connect(&target.database, false).await?;
    let after = connection.table_contents(&table_ref).await?;
    let still: Vec<&str> = after.rows.iter().map(|r| r.name.as_str()).collect();
    let (not_undone, undone): (Vec<String>, Vec<String>) = names
        .iter()
        .cloned()
        .partition(|n| still.contains(&n.as_str()));
    report.undone = undone;
    report.not_undone = not_undone;
    if let Some(e) = runner_failure
        && report.undone.is_empty()
    {
        // Knex did not run (or undid nothing): nothing changed.
        return Err(e.into());
    }
    report.error = run_error;
    if LockState::from_rows(after.lock.as_deref()).blocks_migrations() {
        // Knex normally frees its lock even when a migration fails; if it could not, free it: the
        // lock was free before and no pod is starting.
        connection
            .release_lock_if_held(&table_ref, Some(DEFAULT_LOCK_WAIT))
            .await?;
    }
    report.lock_released = true;
    report.status = Some(TableStatus::new(
        table.to_string(),
        &after.rows,
        after.lock.as_deref(),
        Some(files),
    ));

    if text {
        let status_report = report.status.as_ref().map(|status| DbStatusReport {
            kind: "DbStatus",
            source: Some(runner_source.name.clone()),
            databases: vec![DatabaseStatus {
                plugin: plugin.to_string(),
                database: target.database.clone(),
                schema: target.schema.clone(),
                tables: vec![status.clone()],
            }],
        });
        render::emit(&render::db::rollback_done(
            &report,
            status_report.as_ref(),
            style,
        ));
    } else {
        render::emit(&render::render_value(&report, style));
    }
    if report.error.is_none() && report.not_undone.is_empty() {
        return Ok(Outcome::Ok);
    }
    let stopped = DbCommandError::RollbackStopped {
        knex_error: report.error.clone(),
        undone: report.undone.clone(),
        not_undone: report.not_undone.clone(),
    };
    if report.undone.is_empty() {
        // Nothing was undone: a failure like any other (exit 2).
        Err(stopped)
    } else {
        render::error(&stopped.to_string());
        Ok(Outcome::PartlyDone)
    }
}

/// Where Knex runs, as the plan names it.
fn knex_place(place: &SourcePlace) -> KnexPlace {
    match place {
        SourcePlace::Pod {
            pod,
            container,
            cwd,
        } => KnexPlace::Pod {
            pod: pod.clone(),
            container: container.clone(),
            cwd: cwd.clone(),
        },
        SourcePlace::Local { cwd } => KnexPlace::Local { cwd: cwd.clone() },
        // Settings take the runner as a pod or a folder; an image's pod is gone once it is read.
        SourcePlace::Image { image } => KnexPlace::Local {
            cwd: format!("image:{image}").into(),
        },
    }
}
