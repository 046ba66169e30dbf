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

use serde::Serialize;

use super::status::TableStatus;
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
use crate::options::OutputFormat;
use crate::render::{self, Style, cell};

/// What the operator asked for.
pub struct RollbackRequest<'a> {
    pub plugin: &'a str,
    pub table: &'a str,
    pub target: RollbackTarget,
    pub runner: SourceSpec,
    pub dry_run: bool,
    pub yes: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RollbackReport {
    kind: &'static str,
    plugin: String,
    database: String,
    schema: Option<String>,
    table: String,
    /// Where Knex runs: `pod:NAME` or `dir:/path`.
    runner: String,
    dry_run: bool,
    /// The migrations to undo, in the order they are undone (most recent first).
    plan: Vec<String>,
    undone: Vec<String>,
    not_undone: Vec<String>,
    error: Option<String>,
    /// The lock after the run (Knex releases it; so does this command if Knex could not).
    lock_released: bool,
    status: Option<TableStatus>,
}

fn refused(message: String) -> DbCommandError {
    DbCommandError::Refused(message)
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
        .ok_or_else(|| {
            let known: Vec<&str> = tables.iter().map(|t| t.table.as_str()).collect();
            refused(format!(
                "plugin {plugin:?} has no migration table {table:?} in {}; tables: {}",
                target.database,
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ))
        })?;
    let before = connection.table_contents(&table_ref).await?;

    // 1. The lock.
    let lock = LockState::from_rows(before.lock.as_deref());
    if lock.blocks_migrations() {
        return Err(refused(format!(
            "the migration lock of plugin {plugin} table {table} is held: a pod may be migrating; check with `kubectl backstage health`, and release it with `kubectl backstage db unlock --plugin {plugin}` only if none is"
        )));
    }
    // 2. The named migration is completed (`.js` may be left off).
    let knex_target = match &request.target {
        RollbackTarget::Down(Some(name)) | RollbackTarget::To(name) => {
            let full = completed_migration_name(&before.rows, name)
                .ok_or_else(|| refused(format!("migration {name:?} is not completed in {} {table}; see `kubectl backstage db status --plugin {plugin}`", target.database)))?
                .to_string();
            match request.target {
                RollbackTarget::To(_) => RollbackTarget::To(full),
                _ => RollbackTarget::Down(Some(full)),
            }
        }
        other => other.clone(),
    };
    // 3. The runner's files.
    let cluster_error = cluster.as_ref().err().map(ToString::to_string);
    let cluster = cluster.ok();
    let runner_source = match (&request.runner, &cluster) {
        (SourceSpec::Pod(_), None) => {
            return Err(refused(format!(
                "--runner pod needs the cluster ({}); or use --runner local --source DIR",
                cluster_error.unwrap_or_default()
            )));
        }
        _ => {
            source::load(
                &request.runner,
                cluster.as_ref().ok_or(&KubeError::NoKubeconfig),
                &[],
                None,
            )
            .await?
        }
    };
    let files = source::files_for(&runner_source.tables, plugin, table).ok_or_else(|| {
        refused(format!(
            "the runner's source {} has no migration files for plugin {plugin} table {table}",
            runner_source.name
        ))
    })?;
    let plan = rollback_plan(&files.files, &before.rows, &knex_target).map_err(|e| match e {
        RollbackError::DirectoryCorrupt { .. } => refused(format!(
            "files are missing from the runner's source {}: {e}",
            runner_source.name
        )),
        other => refused(other.to_string()),
    })?;
    // 4. No backend pod starting (it may be migrating with the older code right now).
    match &cluster {
        Some(cluster) => {
            let starting = starting_pods(cluster).await?;
            if !starting.is_empty() {
                return Err(refused(format!(
                    "refusing to roll back: pod {} in namespace {} is starting and may be migrating; wait with `kubectl backstage health --wait`",
                    starting.join(", "),
                    cluster.namespace
                )));
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
        dry_run: request.dry_run,
        plan: names.clone(),
        undone: Vec::new(),
        not_undone: Vec::new(),
        error: None,
        lock_released: true,
        status: None,
    };
    let text = matches!(style.format, OutputFormat::Table | OutputFormat::Wide);
    if names.is_empty() {
        if text {
            render::emit(&format!(
                "Nothing to roll back in {} {table}.\n",
                target.database
            ));
        } else {
            render::emit(&render::render_value(&report, style));
        }
        return Ok(Outcome::Ok);
    }
    if text {
        render::emit(&plan_text(&report, &runner_source.place));
    }
    if request.dry_run {
        if !text {
            render::emit(&render::render_value(&report, style));
        }
        return Ok(Outcome::Ok);
    }
    if !request.yes {
        confirm::confirm(format!(
            "Undo {} migration{}?",
            names.len(),
            if names.len() == 1 { "" } else { "s" }
        ))
        .await
        .map_err(|e| refused(e.0))?;
    }

    // Run Knex where the newer files are.
    let ca_pem =
        match &databases.settings.sslrootcert {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                refused(format!("cannot read --sslrootcert {}: {e}", path.display()))
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
    let run_error = match &run {
        Ok(run) => {
            tracing::info!(stderr = %run.stderr.trim(), "knex runner finished");
            run.error.clone()
        }
        Err(e) => Some(e.to_string()),
    };

    // What the database says now is the truth about what was undone.
    let mut connection = databases.connect(&target.database, false).await?;
    let after = connection.table_contents(&table_ref).await?;
    let still: Vec<&str> = after.rows.iter().map(|r| r.name.as_str()).collect();
    report.undone = names
        .iter()
        .filter(|n| !still.contains(&n.as_str()))
        .cloned()
        .collect();
    report.not_undone = names
        .iter()
        .filter(|n| still.contains(&n.as_str()))
        .cloned()
        .collect();
    if let Err(e) = &run
        && report.undone.is_empty()
    {
        // Knex did not run (or undid nothing): nothing changed.
        return Err(refused(e.to_string()));
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
        render::emit(&result_text(&report));
        if let Some(status) = &report.status {
            let status_report = super::status::DbStatusReport {
                kind: "DbStatus",
                source: Some(runner_source.name.clone()),
                databases: vec![super::status::DatabaseStatus {
                    plugin: plugin.to_string(),
                    database: target.database.clone(),
                    schema: target.schema.clone(),
                    tables: vec![status.clone()],
                }],
            };
            render::emit(&format!("\nStatus now (against {}):\n", runner_source.name));
            render::emit(&render::render(&status_report, style));
        }
    } else {
        render::emit(&render::render_value(&report, style));
    }
    if report.error.is_none() && report.not_undone.is_empty() {
        return Ok(Outcome::Ok);
    }
    let message = format!(
        "the rollback stopped part-way{}: undone {}, not undone {}; the lock is released",
        report
            .error
            .as_ref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default(),
        list(&report.undone),
        list(&report.not_undone)
    );
    if report.undone.is_empty() {
        // Nothing was undone: a failure like any other (exit 2).
        Err(refused(message))
    } else {
        render::error(&message);
        Ok(Outcome::PartlyDone)
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn plan_text(report: &RollbackReport, place: &SourcePlace) -> String {
    let mut out = format!(
        "Roll back {} migration{} of plugin {} ({} {}), most recent first:\n",
        report.plan.len(),
        if report.plan.len() == 1 { "" } else { "s" },
        cell(&report.plugin),
        cell(&report.database),
        cell(&report.table)
    );
    for (i, name) in report.plan.iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", i + 1, cell(name)));
    }
    let runner = match place {
        SourcePlace::Pod {
            pod,
            container,
            cwd,
        } => format!("Knex in pod {pod} (container {container}, {cwd})"),
        SourcePlace::Local { cwd } => format!("Knex from {}", cwd.display()),
    };
    out.push_str(&format!(
        "Runs each migration's down() with {}.\n",
        cell(&runner)
    ));
    if report.dry_run {
        out.push_str("Dry run: nothing was changed.\n");
    }
    out
}

fn result_text(report: &RollbackReport) -> String {
    let mut out = String::new();
    if !report.undone.is_empty() {
        out.push_str(&format!(
            "Rolled back: {}\n",
            cell(&report.undone.join(", "))
        ));
    }
    if !report.not_undone.is_empty() {
        out.push_str(&format!(
            "NOT rolled back (still applied): {}\n",
            cell(&report.not_undone.join(", "))
        ));
    }
    if let Some(error) = &report.error {
        out.push_str(&format!("Knex stopped with: {}\n", cell(error)));
    }
    out
}
