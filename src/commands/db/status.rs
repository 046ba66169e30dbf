//! `db status`: per plugin and migration table, completed / pending / missing migrations, the lock and
//! the current version. Read-only.

use serde::Serialize;

use super::{Databases, DbCommandError};
use crate::commands::Outcome;
use crate::knex::model::{LockState, MigrationStatus};
use crate::knex::packages::MigrationTableSource;
use crate::migrations::source::{LoadedSource, files_for};
use crate::render::{self, Color, Report, Style, cell, table_text};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbStatusReport {
    pub kind: &'static str,
    /// `dir:/path`, or `null` when no migration files were given.
    pub source: Option<String>,
    pub databases: Vec<DatabaseStatus>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    pub plugin: String,
    pub database: String,
    pub schema: Option<String>,
    pub tables: Vec<TableStatus>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableStatus {
    pub table: String,
    /// Whether Knex would find the lock held (Backstage would fail with "Migration table is already
    /// locked").
    pub locked: bool,
    pub lock: LockState,
    /// Which package's files the table was compared with (`name@version/folder`), if any.
    pub files_from: Option<String>,
    #[serde(flatten)]
    pub status: MigrationStatus,
    /// The error Backstage would stop with, when migrations are missing.
    pub corrupt_directory_error: Option<String>,
}

impl TableStatus {
    pub fn new(
        table: String,
        rows: &[crate::knex::model::MigrationRow],
        lock: Option<&[crate::knex::model::LockRow]>,
        files: Option<&MigrationTableSource>,
    ) -> TableStatus {
        let status = match files {
            Some(source) => MigrationStatus::new(&source.files, rows),
            None => MigrationStatus::database_only(rows),
        };
        let lock = LockState::from_rows(lock);
        TableStatus {
            table,
            locked: lock.blocks_migrations(),
            lock,
            files_from: files.map(describe_files),
            corrupt_directory_error: status.corrupt_directory_message(),
            status,
        }
    }

    pub fn has_problems(&self) -> bool {
        self.locked || !self.status.is_in_sync()
    }
}

fn describe_files(source: &MigrationTableSource) -> String {
    if source.package.is_empty() {
        source.folder.clone()
    } else {
        format!("{}@{}/{}", source.package, source.version, source.folder)
    }
}

impl DbStatusReport {
    pub fn has_problems(&self) -> bool {
        self.databases
            .iter()
            .flat_map(|d| &d.tables)
            .any(TableStatus::has_problems)
    }
}

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
            header.extend(["DATABASE", "FILES"]);
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
                    row.extend([cell(&db.database), String::new()]);
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
                }
                table.add_row(row);
            }
        }
        let mut out = table_text(&table);
        let mut notes = String::new();
        for db in &self.databases {
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
        if self.source.is_none() {
            notes.push_str("(no --source: pending and missing migrations need the migration files to compare with)\n");
        }
        if !notes.is_empty() {
            out.push('\n');
            out.push_str(&notes);
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

pub async fn run(
    databases: &Databases,
    plugins: &[String],
    source: Option<&LoadedSource>,
    style: &Style,
) -> Result<Outcome, DbCommandError> {
    let report = status_report(
        databases,
        plugins,
        source.map(|s| s.name.clone()),
        source.map_or(&[][..], |s| &s.tables),
    )
    .await?;
    render::emit(&render::render(&report, style));
    Ok(if report.has_problems() {
        Outcome::Problems
    } else {
        Outcome::Ok
    })
}

pub async fn status_report(
    databases: &Databases,
    plugins: &[String],
    source: Option<String>,
    sources: &[MigrationTableSource],
) -> Result<DbStatusReport, DbCommandError> {
    let targets = databases.selected(plugins).await?;
    let read = databases.read_all(&targets).await?;
    let has_source = source.is_some();
    let databases = read
        .into_iter()
        .map(|(target, tables)| DatabaseStatus {
            tables: tables
                .into_iter()
                .map(|(table, contents)| {
                    let files = if has_source {
                        files_for(sources, &target.plugin, &table.table)
                    } else {
                        None
                    };
                    TableStatus::new(
                        table.table.clone(),
                        &contents.rows,
                        contents.lock.as_deref(),
                        files,
                    )
                })
                .collect(),
            plugin: target.plugin,
            database: target.database,
            schema: target.schema,
        })
        .collect();
    Ok(DbStatusReport {
        kind: "DbStatus",
        source,
        databases,
    })
}
