//! `db plan --to SOURCE`: what deploying another version's files means for every plugin database —
//! migrations that will run at start-up, and migrations that must be rolled back first, with the exact
//! commands and the warning that they must run with the current, newer code.

use serde::Serialize;

use super::{Databases, DbCommandError};
use crate::commands::Outcome;
use crate::knex::plan::{TablePlan, table_plan};
use crate::migrations::source::LoadedSource;
use crate::render::{self, Color, Report, Style, cell};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbPlanReport {
    pub kind: &'static str,
    /// The files the plan moves to (`dir:/path`, `pod:NAME`).
    pub to: String,
    pub rollback_needed: bool,
    pub databases: Vec<DatabasePlan>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabasePlan {
    pub plugin: String,
    pub database: String,
    pub schema: Option<String>,
    pub tables: Vec<TablePlan>,
    /// Migration tables the target has no files for (its version does not ship that plugin or module).
    pub not_in_target: Vec<String>,
}

const NEWER_CODE_WARNING: &str = "Run these rollbacks before deploying, with the current (newer) code — the image that applied the \
migrations: the default `--runner pod` uses a running pod of it. The older code cannot undo migrations it does not have.";

impl Report for DbPlanReport {
    fn text(&self, style: &Style) -> String {
        let mut out = String::new();
        for db in &self.databases {
            for t in db
                .tables
                .iter()
                .filter(|t| !t.upgrade.is_empty() || !t.rollback.is_empty())
            {
                out.push_str(&format!(
                    "{} {}\n",
                    style.paint(&cell(&db.plugin), Color::Bold),
                    cell(&t.table)
                ));
                if !t.rollback.is_empty() {
                    out.push_str(&format!(
                        "  {} {}\n",
                        style.paint("roll back first, most recent first:", Color::Red),
                        cell(&t.rollback.join(", "))
                    ));
                    for command in &t.commands {
                        out.push_str(&format!("    {}\n", cell(command)));
                    }
                }
                if !t.upgrade.is_empty() {
                    out.push_str(&format!(
                        "  {} {}\n",
                        style.paint("will run at start-up:", Color::Yellow),
                        cell(&t.upgrade.join(", "))
                    ));
                }
            }
        }
        if out.is_empty() {
            out.push_str(&format!(
                "Nothing to do: every migration table matches the files of {}.\n",
                cell(&self.to)
            ));
        } else if self.rollback_needed {
            out.push('\n');
            out.push_str(&style.paint(&format!("warning: {NEWER_CODE_WARNING}"), Color::Yellow));
            out.push('\n');
        }
        out
    }
}

pub async fn run(
    databases: &Databases,
    plugins: &[String],
    target: &LoadedSource,
    style: &Style,
) -> Result<Outcome, DbCommandError> {
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
