//! `db plan --to SOURCE`: what deploying another version's files means for every plugin database —
//! migrations that will run at start-up, and migrations that must be rolled back first, with the exact
//! commands and the warning that they must run with the current, newer code.

use super::{Databases, DbCommandError};
use crate::commands::Outcome;
use crate::knex::plan::{TablePlan, table_plan};
use crate::migrations::source::LoadedSource;
use crate::model::db::{DatabasePlan, DbPlanReport};
use crate::render::{self, Style};

pub async fn run(
    databases: &Databases,
    plugins: &[String],
    target: &LoadedSource,
    style: &Style,
) -> Result<Outcome, DbCommandError> {
    let plans = plans(databases, plugins, target).await?;
    let rollback_needed = plans
        .iter()
        .flat_map(|p| &p.tables)
        .any(TablePlan::needs_rollback);
    let report = DbPlanReport {
        kind: "DbPlan",
        to: target.name.clone(),
        rollback_needed,
        databases: plans,
    };
    render::emit(&render::render(&report, style));
    Ok(if rollback_needed {
        Outcome::Problems
    } else {
        Outcome::Ok
    })
}

/// The plan of every selected plugin database (all with no `plugins`) against `target`'s files.
pub async fn plans(
    databases: &Databases,
    plugins: &[String],
    target: &LoadedSource,
) -> Result<Vec<DatabasePlan>, DbCommandError> {
    let targets = databases.selected(plugins).await?;
    let read = databases.read_all(&targets).await?;
    let mut plans = Vec::new();
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
                Some(files) => plan.tables.push(table_plan(
                    &target_db.plugin,
                    &table.table,
                    &contents.rows,
                    &files.files,
                )),
                None => plan.not_in_target.push(table.table.clone()),
            }
        }
        plans.push(plan);
    }
    Ok(plans)
}
