//! The text of `db rollback`: the plan before the question, and what was and was not undone after.

use crate::model::db::{DbStatusReport, KnexPlace, RollbackReport};
use crate::render::{Style, cell, render};

/// When no migration matches the target.
pub fn nothing_to_roll_back(report: &RollbackReport) -> String {
    format!(
        "Nothing to roll back in {} {}.\n",
        report.database, report.table
    )
}

/// The plan: the migrations in the order they are undone, and where Knex runs.
pub fn rollback_plan(report: &RollbackReport) -> String {
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
    let runner = match &report.knex_place {
        KnexPlace::Pod {
            pod,
            container,
            cwd,
        } => format!("Knex in pod {pod} (container {container}, {cwd})"),
        KnexPlace::Local { cwd } => format!("Knex from {}", cwd.display()),
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

/// The question before Knex runs.
pub fn rollback_question(report: &RollbackReport) -> String {
    let count = report.plan.len();
    format!(
        "Undo {count} migration{}?",
        if count == 1 { "" } else { "s" }
    )
}

/// What was and was not undone, then the table's status now (when it could be read back).
pub fn rollback_done(
    report: &RollbackReport,
    status: Option<&DbStatusReport>,
    style: &Style,
) -> String {
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
    if let Some(status) = status {
        out.push_str(&format!(
            "\nStatus now (against {}):\n",
            status.source.as_deref().unwrap_or_default()
        ));
        out.push_str(&render(status, style));
    }
    out
}
