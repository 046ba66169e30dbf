//! The table and text forms of the `db` commands' reports.

mod rollback;
mod status;
mod unlock;

use super::{Color, Report, Style, cell, table_text};
use crate::knex::model::LockState;
use crate::model::db::{CurrentVersionReport, DbList, DbPlanReport};

pub use rollback::{nothing_to_roll_back, rollback_done, rollback_plan, rollback_question};
pub use unlock::{nothing_to_unlock, unlock_done, unlock_plan, unlock_question, unlock_stopped};

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
                    for (name, why) in t.irreversible() {
                        out.push_str(&format!(
                            "    {} {} ({why})\n",
                            style.paint("cannot be rolled back:", Color::Red),
                            cell(name)
                        ));
                    }
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
        if !self.warnings.is_empty() && !self.rollback_needed {
            out.push('\n');
        }
        for warning in &self.warnings {
            out.push_str(&style.paint(&format!("warning: {}", cell(warning)), Color::Yellow));
            out.push('\n');
        }
        out
    }
}

/// The note of `db status` without `--source` when the running pod's files could not be read.
pub fn not_comparing_with_pod(cause: &str) -> String {
    format!("not comparing with the running pod's files ({cause}); showing what the databases hold")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::db::{KnexPlace, LockEntry, RollbackReport, UnlockReport};

    fn rollback(plan: &[&str], knex_place: KnexPlace, dry_run: bool) -> RollbackReport {
        RollbackReport {
            kind: "DbRollback",
            plugin: "catalog".into(),
            database: "backstage_plugin_catalog".into(),
            schema: None,
            table: "knex_migrations".into(),
            runner: "pod:backstage-1".into(),
            knex_place,
            dry_run,
            plan: plan.iter().map(|s| s.to_string()).collect(),
            undone: Vec::new(),
            not_undone: Vec::new(),
            error: None,
            lock_released: true,
            status: None,
        }
    }

    #[test]
    fn the_rollback_plan_names_each_migration_and_where_knex_runs() {
        let pod = KnexPlace::Pod {
            pod: "backstage-1".into(),
            container: "backstage".into(),
            cwd: "/app".into(),
        };
        let report = rollback(&["b.js", "a.js"], pod, true);
        assert_eq!(
            rollback_plan(&report),
            "Roll back 2 migrations of plugin catalog (backstage_plugin_catalog knex_migrations), most recent first:\n  1. b.js\n  2. a.js\nRuns each migration's down() with Knex in pod backstage-1 (container backstage, /app).\nDry run: nothing was changed.\n"
        );
        assert_eq!(rollback_question(&report), "Undo 2 migrations?");
        let local = KnexPlace::Local {
            cwd: "/srv/backstage".into(),
        };
        let report = rollback(&["\x1b[2Ja.js"], local, false);
        assert_eq!(
            rollback_plan(&report),
            "Roll back 1 migration of plugin catalog (backstage_plugin_catalog knex_migrations), most recent first:\n  1. \\u{1b}[2Ja.js\nRuns each migration's down() with Knex from /srv/backstage.\n"
        );
        assert_eq!(rollback_question(&report), "Undo 1 migration?");
    }

    #[test]
    fn the_unlock_plan_and_question_count_the_locks() {
        let entry = |table: &str| LockEntry {
            table: table.into(),
            lock_table: format!("{table}_lock"),
            state: LockState::Held,
        };
        let mut report = UnlockReport {
            kind: "DbUnlock",
            plugin: "catalog".into(),
            database: "backstage_plugin_catalog".into(),
            schema: None,
            dry_run: false,
            plan: vec![entry("knex_migrations")],
            released: Vec::new(),
            already_free: Vec::new(),
            not_released: Vec::new(),
            error: None,
        };
        assert_eq!(
            unlock_plan(&report),
            "Release the migration lock of plugin catalog (backstage_plugin_catalog):\n  knex_migrations (knex_migrations_lock, held)\n"
        );
        assert_eq!(unlock_question(&report), "Release the lock?");
        report.plan.push(entry("x_knex_migrations"));
        assert!(unlock_plan(&report).starts_with("Release 2 migration locks of plugin catalog"));
        assert_eq!(unlock_question(&report), "Release 2 locks?");
        assert_eq!(
            nothing_to_unlock("catalog", Some("knex_migrations")),
            "The migration lock of plugin catalog table knex_migrations is not held; nothing changed.\n"
        );
        assert_eq!(
            nothing_to_unlock("catalog", None),
            "No migration lock of plugin catalog was held; nothing changed.\n"
        );
    }
}
