//! `db plan --to SOURCE`: what deploying another version's files means for every plugin database —
//! migrations that will run at start-up, and migrations that must be rolled back first, with the exact
//! commands and the warning that they must run with the current, newer code — and, for every
//! migration that will run, whether its `down()` could undo it (loaded with Node where the target's
//! files are), with a warning for each that cannot, before anything is applied.

use super::{Databases, DbCommandError};
use crate::commands::Outcome;
use crate::knex::plan::{DownState, TablePlan, table_plan};
use crate::kube::Cluster;
use crate::migrations::reversibility::{self, DownChecks, path_of};
use crate::migrations::source::LoadedSource;
use crate::model::db::{DatabasePlan, DbPlanReport};
use crate::render::{self, Style};

pub async fn run(
    databases: &Databases,
    plugins: &[String],
    target: &LoadedSource,
    cluster: Option<&Cluster>,
    style: &Style,
) -> Result<Outcome, DbCommandError> {
    let report = gather(databases, plugins, target, cluster).await?;
    render::emit(&render::render(&report, style));
    Ok(if report.rollback_needed {
        Outcome::Problems
    } else {
        Outcome::Ok
    })
}

/// The plan as a report value, printing nothing (for commands that plan before they act). `cluster`
/// is needed when the target is a pod (its files' `down()` are checked there).
pub async fn gather(
    databases: &Databases,
    plugins: &[String],
    target: &LoadedSource,
    cluster: Option<&Cluster>,
) -> Result<DbPlanReport, DbCommandError> {
    let targets = databases.selected(plugins).await?;
    let read = databases.read_all(&targets).await?;
    let mut plans = Vec::new();
    // The folder of each planned table's files, in the order of the plans' tables.
    let mut directories: Vec<String> = Vec::new();
    for (target_db, tables) in read {
        let mut plan = DatabasePlan {
            plugin: target_db.plugin.clone(),
            database: target_db.database,
            schema: target_db.schema,
            tables: Vec::new(),
            not_in_target: Vec::new(),
        };
        for (table, contents) in &tables {
            match crate::migrations::source::files_for(
                &target.tables,
                &target_db.plugin,
                &table.table,
            ) {
                Some(files) => {
                    let table_plan = table_plan(
                        &target_db.plugin,
                        &table.table,
                        &contents.rows,
                        &files.files,
                    );
                    directories.push(files.directory.clone());
                    plan.tables.push(table_plan);
                }
                None => plan.not_in_target.push(table.table.clone()),
            }
        }
        plans.push(plan);
    }
    let mut warnings = Vec::new();
    // The files to run, where they are; checked now unless the source was checked when read.
    let pending: Vec<String> = plans
        .iter()
        .flat_map(|p| &p.tables)
        .zip(&directories)
        .flat_map(|(t, dir)| t.upgrade.iter().map(move |f| path_of(dir, f)))
        .collect();
    let checked = match (&target.downs, &target.downs_error) {
        (Some(downs), _) => Ok(downs.clone()),
        (None, Some(cause)) => Err(cause.clone()),
        (None, None) => reversibility::check_downs(&target.place, cluster, &pending)
            .await
            .map_err(|e| e.to_string()),
    };
    let downs: DownChecks = checked.unwrap_or_else(|cause| {
        if !pending.is_empty() {
            warnings.push(format!(
                "could not check whether the migrations to run can be undone: {cause}"
            ));
        }
        DownChecks::new()
    });
    let mut directory = directories.iter();
    for db in &mut plans {
        for t in &mut db.tables {
            let dir = directory.next().cloned().unwrap_or_default();
            t.check_upgrades(|file| {
                downs
                    .get(&path_of(&dir, file))
                    .copied()
                    .unwrap_or(DownState::Unchecked)
            });
            for (name, why) in t.irreversible() {
                warnings.push(format!(
                    "plugin {} table {}: {name} cannot be rolled back once it has run ({why})",
                    db.plugin, t.table
                ));
            }
        }
    }
    let rollback_needed = plans
        .iter()
        .flat_map(|p| &p.tables)
        .any(TablePlan::needs_rollback);
    Ok(DbPlanReport {
        kind: "DbPlan",
        to: target.name.clone(),
        rollback_needed,
        databases: plans,
        warnings,
    })
}
