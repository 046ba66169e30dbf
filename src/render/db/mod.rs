//! The table and text forms of the `db` commands' reports.

mod rollback;
mod status;
mod unlock;

use super::{Color, Report, Style, cell, table_text};
use crate::knex::model::LockState;
use crate::model::db::{CurrentVersionReport, DbList, DbPlanReport};

pub use rollback::{nothing_to_roll_back, rollback_done, rollback_plan};
pub use unlock::{nothing_to_unlock, unlock_done, unlock_plan, unlock_stopped};

impl Report for DbList {
    fn text(&self, style: &Style) -> String {
        if self.databases.is_empty() {
            return format!("No plugin databases found on {}.\n", self.host);
        }
        let mut table = style.table(&["PLUGIN", "DATABASE", "SCHEMA", "MIGRATION TABLES"]);
        for d in &self.databases {
            table.add_row(vec![
                cell(&d.plugin),
                cell(&d.database),
                cell(d.schema.as_deref().unwrap_or("-")),
                cell(&if d.tables.is_empty() {
                    "(none)".to_string()
                } else {
                    d.tables.join(", ")
                }),
            ]);
        }
        table_text(&table)
    }
}

impl Report for CurrentVersionReport {
    fn text(&self, style: &Style) -> String {
        // One table: just the version, as knex prints it, for scripts.
        if let [only] = self.tables.as_slice() {
            return format!("{}\n", cell(&only.current_version));
        }
        let mut table = style.table(&["TABLE", "CURRENT VERSION"]);
        for t in &self.tables {
            table.add_row(vec![cell(&t.table), cell(&t.current_version)]);
        }
        table_text(&table)
    }
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

/// The lock state in words, for tables and messages.
pub fn lock_word(lock: &LockState) -> String {
    match lock {
        LockState::TableMissing => "no lock table".into(),
        LockState::NoRows => "free (no row)".into(),
        LockState::Free => "free".into(),
        LockState::Held => "held".into(),
        LockState::Irregular { rows, free_rows } => {
            format!("irregular ({rows} rows, {free_rows} free)")
        }
    }
}
