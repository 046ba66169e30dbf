//! The table form of `db status`: one row per migration table, then a note per problem.

use super::lock_word;
use crate::model::db::DbStatusReport;
use crate::render::{Color, Report, Style, cell, table_text};

impl Report for DbStatusReport {
    fn text(&self, style: &Style) -> String {
        let mut header = vec![
            "PLUGIN",
            "TABLE",
            "COMPLETED",
            "PENDING",
            "MISSING",
            "LOCK",
            "VERSION",
        ];
        if style.wide() {
            header.extend(["DATABASE", "FILES", "RELEASE"]);
        }
        let mut table = style.table(&header);
        for db in &self.databases {
            if db.tables.is_empty() {
                let mut row = vec![
                    cell(&db.plugin),
                    "(no migration table)".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ];
                if style.wide() {
                    row.extend([cell(&db.database), String::new(), String::new()]);
                }
                table.add_row(row);
            }
            for t in &db.tables {
                let known = t.files_from.is_some();
                let count = |n: usize, bad: bool| match (known, n) {
                    (false, _) => "-".to_string(),
                    (true, 0) => "0".to_string(),
                    (true, n) if bad => style.paint(&n.to_string(), Color::Red),
                    (true, n) => style.paint(&n.to_string(), Color::Yellow),
                };
                let lock = if t.locked {
                    style.paint(&lock_word(&t.lock), Color::Red)
                } else {
                    lock_word(&t.lock)
                };
                let mut row = vec![
                    cell(&db.plugin),
                    cell(&t.table),
                    t.status.completed.len().to_string(),
                    count(t.status.pending.len(), false),
                    count(t.status.missing.len(), true),
                    lock,
                    cell(&t.status.current_version),
                ];
                if style.wide() {
                    row.push(cell(&match &db.schema {
                        Some(schema) => format!("{}/{schema}", db.database),
                        None => db.database.clone(),
                    }));
                    row.push(cell(t.files_from.as_deref().unwrap_or("-")));
                    row.push(cell(t.files_release.as_deref().unwrap_or("-")));
                }
                table.add_row(row);
            }
        }
        let mut out = table_text(&table);
        let notes = notes(self, style);
        if !notes.is_empty() {
            out.push('\n');
            out.push_str(&notes);
        }
        out
    }
}

/// One line per missing, pending or locked table, and a note when nothing was compared.
fn notes(report: &DbStatusReport, style: &Style) -> String {
    let mut notes = String::new();
    for db in &report.databases {
        for t in &db.tables {
            if !t.status.missing.is_empty() {
                notes.push_str(&format!(
                    "{}  {} {}: missing (the database is ahead of the code; Backstage would fail with \"The migration directory is corrupt\"): {}\n",
                    style.paint("error  ", Color::Red),
                    cell(&db.plugin),
                    cell(&t.table),
                    cell(&t.status.missing.join(", "))
                ));
            }
            if !t.status.pending.is_empty() {
                notes.push_str(&format!(
                    "{}  {} {}: pending (will run at start-up): {}\n",
                    style.paint("pending", Color::Yellow),
                    cell(&db.plugin),
                    cell(&t.table),
                    cell(&t.status.pending.join(", "))
                ));
            }
            if t.locked {
                notes.push_str(&format!(
                    "{}  {} {}: the migration lock is held; if no pod is migrating: kubectl backstage db unlock --plugin {} --table {}\n",
                    style.paint("locked ", Color::Red),
                    cell(&db.plugin),
                    cell(&t.table),
                    cell(&db.plugin),
                    cell(&t.table)
                ));
            }
        }
    }
    if report.source.is_none() {
        notes.push_str("(no --source: pending and missing migrations need the migration files to compare with)\n");
    }
    notes
}
